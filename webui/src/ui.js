// window.mininovaUi: what the tests may read (never anything secret: no token, no password).
export const ui = {
  version: "0.1.0",
  uploadProgress: [],
  route: "",
};
window.mininovaUi = ui;
