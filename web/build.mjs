// Builds the web terminal into web/dist: app.js (esbuild bundle of src/main.ts), app.css and
// index.html. Envoy serves exactly these three files on the API's origin.
// Usage: node web/build.mjs [--dev]   (npm run build:web)
import { build } from "esbuild";
import { copyFile, mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const webDir = dirname(fileURLToPath(import.meta.url));
const dist = join(webDir, "dist");
const dev = process.argv.includes("--dev");

await mkdir(dist, { recursive: true });
await build({
  entryPoints: [join(webDir, "src", "main.ts")],
  outfile: join(dist, "app.js"),
  bundle: true,
  format: "iife",
  platform: "browser",
  target: ["es2022"],
  minify: !dev,
  sourcemap: dev ? "inline" : false,
  legalComments: "none",
  logLevel: "warning",
});
// One stylesheet file keeps the served set to three files; order is the cascade order.
const styles = ["base.css", "layout.css", "components.css", "responsive.css"];
const css = await Promise.all(styles.map((f) => readFile(join(webDir, "styles", f), "utf8")));
await writeFile(join(dist, "app.css"), css.join("\n"));
await copyFile(join(webDir, "index.html"), join(dist, "index.html"));
console.log(`web terminal built into ${dist}`);
