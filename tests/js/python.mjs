// Start rawsse's Python servers (`python -m rawsse ...`) for end-to-end tests.
// The interpreter is $RAWSSE_PYTHON (set by tests/test_js.py), else the
// project's .venv, else python3.
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

export const PYTHON =
  process.env.RAWSSE_PYTHON || (existsSync(`${ROOT}.venv/bin/python`) ? `${ROOT}.venv/bin/python` : "python3");

/** Why Python tests cannot run here (`statement`, an import, fails), or null. */
export function pythonMissing(statement = "import rawsse") {
  const done = spawnSync(PYTHON, ["-c", statement], { cwd: ROOT, encoding: "utf8" });
  if (done.status === 0) return null;
  const why = (done.stderr || done.error?.message || "").trim().split("\n").at(-1);
  return `${PYTHON} -c "${statement}" failed: ${why}`;
}

/**
 * Run `python -m rawsse ARGS...`; resolve with {url, stop, stderr()} once its
 * first stdout line (which holds its http:// URL) arrives.
 */
export function startRawsse(args, { timeout = 30_000 } = {}) {
  const child = spawn(PYTHON, ["-m", "rawsse", ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (text) => {
    stderr += text;
  });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  };
  return new Promise((resolve, reject) => {
    let stdout = "";
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`rawsse ${args.join(" ")} printed no URL in ${timeout} ms\n${stderr}`));
    }, timeout);
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", function onData(text) {
      stdout += text;
      const newline = stdout.indexOf("\n");
      if (newline < 0) return;
      child.stdout.off("data", onData);
      child.stdout.resume();
      clearTimeout(timer);
      const match = stdout.slice(0, newline).match(/http:\/\/[^\s]+/);
      if (!match) {
        stop();
        reject(new Error(`no URL in the first line: ${stdout.slice(0, newline)}`));
        return;
      }
      resolve({ url: match[0], stop, stderr: () => stderr, process: child });
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`rawsse ${args.join(" ")} exited with ${code}\n${stderr}`));
    });
  });
}

/** Run Python code; return its stdout (throws on failure). */
export function runPython(code) {
  const done = spawnSync(PYTHON, ["-c", code], { cwd: ROOT, encoding: "utf8", maxBuffer: 64 << 20 });
  if (done.status !== 0) throw new Error(`python failed: ${done.stderr}`);
  return done.stdout;
}
