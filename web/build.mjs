// node build.mjs --out DIR: the dashboard (index.html, assets/app.js, assets/app.css, favicon.svg)
// and the embed widget (embed.js) bundled from src/ and node_modules by esbuild. Runs from any cwd.
import * as esbuild from "esbuild";
import { copyFile, mkdir, readFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const here = dirname(fileURLToPath(import.meta.url));
const src = join(here, "src");
const at = process.argv.indexOf("--out");
if (at < 0 || !process.argv[at + 1]) {
  console.error("usage: node build.mjs --out DIR");
  process.exit(2);
}
const out = resolve(process.argv[at + 1]);

const common = {
  absWorkingDir: here,
  bundle: true,
  minify: true,
  target: "es2020",
  sourcemap: false,
  logLevel: "warning",
};

// esbuild has printed the errors already; the stack trace would only bury them.
process.on("unhandledRejection", () => process.exit(1));

await mkdir(join(out, "assets"), { recursive: true });

await esbuild.build({
  ...common,
  entryPoints: [{ in: join(src, "main.ts"), out: "app" }],
  outdir: join(out, "assets"),
  format: "iife",
});

// embed.js has to stand alone on someone else's page: its CSS travels inside the script.
const css = await esbuild.build({ ...common, entryPoints: [join(src, "embed.css")], write: false, outdir: out });
await esbuild.build({
  ...common,
  entryPoints: [join(src, "embed.ts")],
  outfile: join(out, "embed.js"),
  format: "iife",
  define: { EMBED_CSS: JSON.stringify(css.outputFiles[0].text) },
});

await copyFile(join(src, "index.html"), join(out, "index.html"));
await copyFile(join(src, "favicon.svg"), join(out, "favicon.svg"));

const gz = async (f) => gzipSync(await readFile(join(out, f)), { level: 9 }).length;
const sizes = { "assets/app.js": await gz("assets/app.js"), "assets/app.css": await gz("assets/app.css"), "embed.js": await gz("embed.js") };
for (const [f, n] of Object.entries(sizes)) console.log(`${f.padEnd(15)} ${(n / 1024).toFixed(1)} KiB gzip`);
const app = sizes["assets/app.js"] + sizes["assets/app.css"];
console.log(`app.js + app.css ${(app / 1024).toFixed(1)} KiB gzip (budget 300 KiB)`);
if (app > 300 * 1024) {
  console.error("over the 300 KiB budget");
  process.exit(1);
}
