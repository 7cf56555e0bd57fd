// What the Node scripts share: a deadline, one JSON line of what was seen, waiting for events.
"use strict";

const STEP_MS = 5000; // each awaited event

// `sockets` are closed on failure; `seen` is printed as the last line, with `error` on failure.
function harness(scenario, totalMs) {
  const sockets = [];
  const seen = { scenario };

  function fail(error) {
    process.stdout.write(JSON.stringify({ ...seen, error: String((error && error.stack) || error) }) + "\n");
    for (const s of sockets) s.close();
    process.exit(1);
  }

  setTimeout(() => fail(`scenario "${scenario}" did not finish within ${totalMs} ms`), totalMs).unref();

  // Resolves with the arguments of the first `event` for which `test(...args)` holds.
  function waitFor(emitter, event, what, test = () => true) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        emitter.off(event, handler);
        reject(new Error(`timed out after ${STEP_MS} ms waiting for ${what}`));
      }, STEP_MS);
      function handler(...args) {
        if (!test(...args)) return;
        clearTimeout(timer);
        emitter.off(event, handler);
        resolve(args);
      }
      emitter.on(event, handler);
    });
  }

  return { sockets, seen, fail, waitFor };
}

module.exports = { harness, STEP_MS };
