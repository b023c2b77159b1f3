// The class roster's pure parts: CSV parsing, names, clouds.yaml.

export const CLASS_NAME = /^[A-Za-z0-9_-]+$/;
export const ROSTER_TAG = "mininova-roster";
export const classTag = (cls) => `roster:${cls}`;
export const projectName = (cls, username) => `${cls}-${username}`;

function cells(line) {
  return line.split(",").map((c) => c.trim().replace(/^"(.*)"$/, "$1").trim());
}

/**
 * One student per line, "username[,email]"; blank lines ignored; a first line whose first
 * cell is "username" is a header. → [{username, email}]
 */
export function parseRosterCsv(text) {
  const students = [];
  let first = true;
  for (const raw of String(text || "").split(/\r\n|\n|\r/)) {
    if (!raw.trim()) continue;
    const [username = "", email = ""] = cells(raw);
    if (first) {
      first = false;
      if (username.toLowerCase() === "username") continue;
    }
    if (!username) continue;
    students.push({ username, email: email || null });
  }
  return students;
}

/** The class and student of a roster project, from its tags and description/name. */
export function rosterInfo(project) {
  const tag = (project.tags || []).find((t) => typeof t === "string" && t.startsWith("roster:"));
  if (!tag) return null;
  const cls = tag.slice("roster:".length);
  const m = /^Class (.+?): (.+)$/.exec(project.description || "");
  let username = m && m[1] === cls ? m[2] : "";
  if (!username && project.name.startsWith(`${cls}-`)) username = project.name.slice(cls.length + 1);
  return { cls, username: username || project.name };
}

/** Group roster projects by class: Map(class → [{project, username}]) sorted by name. */
export function groupClasses(projects) {
  const classes = new Map();
  for (const p of projects) {
    const info = rosterInfo(p);
    if (!info) continue;
    if (!classes.has(info.cls)) classes.set(info.cls, []);
    classes.get(info.cls).push({ project: p, username: info.username });
  }
  for (const list of classes.values()) list.sort((a, b) => a.username.localeCompare(b.username));
  return new Map([...classes.entries()].sort((a, b) => a[0].localeCompare(b[0])));
}

function yamlString(value) {
  return JSON.stringify(String(value)); // a JSON string is a valid double-quoted YAML scalar
}

/** clouds.yaml for one student. */
export function cloudsYaml({ cloud, authUrl, username, password, projectName: project, region }) {
  return [
    "clouds:",
    `  ${yamlString(cloud)}:`,
    "    auth:",
    `      auth_url: ${yamlString(authUrl)}`,
    `      username: ${yamlString(username)}`,
    `      password: ${yamlString(password)}`,
    `      project_name: ${yamlString(project)}`,
    "      user_domain_name: Default",
    "      project_domain_name: Default",
    `    region_name: ${yamlString(region)}`,
    "    identity_api_version: 3",
    "    interface: public",
    "",
  ].join("\n");
}
