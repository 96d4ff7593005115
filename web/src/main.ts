// Entry point of the web trading terminal (bundled by web/build.mjs into /app.js).
import { App } from "./app";

const root = document.getElementById("app");
if (root) void new App(root).start();
