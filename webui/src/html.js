// One place that binds htm to Preact's h(), so every module writes markup as html`...`.
import { h, render, Fragment } from "preact";
import htm from "htm";

export const html = htm.bind(h);
export { h, render, Fragment };
export { useState, useEffect, useRef, useCallback, useMemo, useLayoutEffect } from "preact/hooks";
