// Fill BullMQ queues with jobs and no worker, for tests/test_alerts_e2e.py.
//
// Real BullMQ (npm) writes its real key layout: plain jobs land in bull:<queue>:wait, jobs with
// a priority in bull:<queue>:prioritized, jobs with a delay in bull:<queue>:delayed.
//
// Usage: VALKEY_PORT=<port> node tests/node/bullmq_fill.mjs <queue>:<wait>:<prioritized>:<delayed> ...
// e.g.   VALKEY_PORT=6379 node tests/node/bullmq_fill.mjs reports:40:20:0 emails:0:0:2000
// Prints one JSON line: {"<queue>": {"wait": n, "prioritized": n, "delayed": n, "paused": n}, ...},
// the counts BullMQ itself reports afterwards. Run from the repo root (resolves ./node_modules).
import { Queue } from 'bullmq';

const port = Number(process.env.VALKEY_PORT);
if (!Number.isInteger(port)) {
  console.error('VALKEY_PORT is required');
  process.exit(64);
}
const specs = process.argv.slice(2).map((arg) => {
  const [name, wait, prioritized, delayed] = arg.split(':');
  const counts = [wait, prioritized, delayed].map(Number);
  if (!name || counts.some((n) => !Number.isInteger(n) || n < 0)) {
    console.error(`bad argument ${JSON.stringify(arg)}: use <queue>:<wait>:<prioritized>:<delayed>`);
    process.exit(64);
  }
  return { name, wait: counts[0], prioritized: counts[1], delayed: counts[2] };
});

// Fail fast instead of retrying forever: the test gives this script a few seconds.
const connection = { host: '127.0.0.1', port, maxRetriesPerRequest: 1, connectTimeout: 2000 };
const timer = setTimeout(() => {
  console.error('timed out after 15 s');
  process.exit(1);
}, 15000);

const result = {};
for (const spec of specs) {
  const queue = new Queue(spec.name, { connection });
  const jobs = [
    ...Array.from({ length: spec.wait }, (_, i) => ({ name: 'plain', data: { i } })),
    ...Array.from({ length: spec.prioritized }, (_, i) => ({ name: 'urgent', data: { i }, opts: { priority: 1 } })),
    ...Array.from({ length: spec.delayed }, (_, i) => ({ name: 'later', data: { i }, opts: { delay: 3600000 } })),
  ];
  if (jobs.length > 0) {
    await queue.addBulk(jobs);
  }
  result[spec.name] = await queue.getJobCounts('wait', 'prioritized', 'delayed', 'paused');
  await queue.close();
}
clearTimeout(timer);
process.stdout.write(JSON.stringify(result) + '\n');
