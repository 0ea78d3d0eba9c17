// Runs tools/heap32's probe (fakes/heap32_probe.py) in the 32-bit MicroPython of
// @micropython/micropython-webassembly-pyscript (node_modules/, see package.json),
// one fresh interpreter per mode, and prints the probe's "HEAP32 {json}" lines.
//   node tools/heap32/measure.mjs --lib DIR [--heap BYTES] [--mode steps] [--mode modules] ...
// DIR (the compiled firmware + the probe and its fakes, as run.py builds it) is
// copied into the interpreter's filesystem as /lib, which is on its sys.path.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const pkg = path.join(here, "node_modules", "@micropython", "micropython-webassembly-pyscript", "micropython.mjs");

function args(argv) {
  const a = { lib: null, heap: 4 * 1024 * 1024, modes: [] };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--lib") a.lib = argv[++i];
    else if (argv[i] === "--heap") a.heap = parseInt(argv[++i], 10);
    else if (argv[i] === "--mode") a.modes.push(argv[++i]);
    else throw new Error("unknown argument " + argv[i]);
  }
  if (!a.lib) throw new Error("--lib DIR is required");
  if (!a.modes.length) a.modes = ["steps", "modules", "objects"];
  return a;
}

function copyTree(FS, src, dst) {
  FS.mkdirTree(dst);
  for (const e of fs.readdirSync(src, { withFileTypes: true })) {
    const s = path.join(src, e.name);
    const d = dst + "/" + e.name;
    if (e.isDirectory()) copyTree(FS, s, d);
    else if (e.isFile()) FS.writeFile(d, fs.readFileSync(s));
  }
}

const a = args(process.argv.slice(2));
const { loadMicroPython } = await import(pkg);
let failed = false;
for (const mode of a.modes) {
  const lines = [];
  const mp = await loadMicroPython({
    heapsize: a.heap,
    stdout: (s) => lines.push(s),
    stderr: (s) => process.stderr.write(s + "\n"),
  });
  copyTree(mp.FS, a.lib, "/lib");
  try {
    // The first figure, before anything of ours is loaded: what the empty
    // interpreter holds (plus this stub's own bytecode).
    mp.runPython(
      "import gc\ngc.collect()\n_e = gc.mem_alloc()\nimport heap32_probe\nheap32_probe.main(" +
        JSON.stringify(mode) + ", _e)\n");
  } catch (e) {
    failed = true;
    process.stderr.write(`heap32 (wasm, ${mode}): ${e.type || e.name}: ${e.message}\n`);
  }
  for (const l of lines) {
    if (l.startsWith("HEAP32 ") || l.startsWith("QSTR ") || l.startsWith("qstr pool:")) process.stdout.write(l + "\n");
    else process.stderr.write(l + "\n");
  }
}
process.exit(failed ? 1 : 0);
