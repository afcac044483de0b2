// bench/cpu-profile-hook.mjs — a CPU profile of a child process, for benchmarks.
//
// `--cpu-prof` is not allowed in NODE_OPTIONS, so a bench that wants
// profiles of LocalCluster's children (which inherit its environment) sets
//   NODE_OPTIONS="--import /abs/path/bench/cpu-profile-hook.mjs" FLOTILLA_CPU_PROF_DIR=DIR
// and each child profiles itself through the inspector, writing
// DIR/<argv[2]>-<pid>.cpuprofile (open in Chrome DevTools) when it exits.
import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.env.FLOTILLA_CPU_PROF_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 500 });
  session.post('Profiler.start');
  process.on('exit', () => {
    // The in-process session answers synchronously, so the profile is written before the process ends.
    session.post('Profiler.stop', (err, res) => {
      if (!err) writeFileSync(join(dir, `${process.argv[2] ?? 'node'}-${process.pid}.cpuprofile`), JSON.stringify(res.profile));
    });
  });
}
