// BullMQ and plain writes through Valkey Sentinel during a fault, driven by
// tests/test_sentinel_failover.py (run inside a client pod's network namespace).
//
// Three clients, each its own ioredis connection found through the Sentinels:
//   producer  adds job-<i> at ADD_PER_SECOND; an add that fails is retried with the same jobId
//             (idempotent) until acknowledged;
//   worker    one BullMQ Worker (CONCURRENCY, JOB_MS per job);
//   writer    SET <WRITE_PREFIX><n> <n> at WRITES_PER_SECOND, one at a time; a failed write is
//             counted and not retried (the test checks every acknowledged one afterwards).
// Connection options: SENTINELS (JSON [{host, port}]), MASTER_NAME, CLIENT_OPTIONS (JSON ioredis
// options; "retryStrategy": {"stepMs": a, "maxMs": b} becomes times => min(a * times, b), and
// "reconnectOnError": ["READONLY", ...] reconnects and resends on errors with those prefixes).
// WORKER_OPTIONS (JSON) are extra BullMQ Worker options (lockDuration, stalledInterval, ...).
//
// stdin: "stop" stops the producer and the writer; then the script waits until every added job
// is finished (or nothing moved for QUIET_MS, or DEADLINE_MS passed), reads each job's state
// and prints a summary.
// stdout: one JSON object per line, {"ev": ..., "t": <ms since epoch>, ...}:
//   ready, added {i}, started {i, n}, completed {i}, written {n}, write-error {n, msg},
//   add-error {i, msg}, worker-error {msg}, summary {...}, fatal {msg}.
// Run from the repo root (node resolves bullmq and ioredis from ./node_modules).
import { Queue, Worker } from 'bullmq';
import Redis from 'ioredis';
import readline from 'node:readline';

const env = (name, fallback) => Number(process.env[name] ?? fallback);
const SENTINELS = JSON.parse(process.env.SENTINELS ?? '[]');
const MASTER_NAME = process.env.MASTER_NAME ?? '';
if (SENTINELS.length === 0 || MASTER_NAME === '') {
  console.error('SENTINELS and MASTER_NAME are required');
  process.exit(64);
}
const CLIENT_OPTIONS = JSON.parse(process.env.CLIENT_OPTIONS ?? '{}');
const WORKER_OPTIONS = JSON.parse(process.env.WORKER_OPTIONS ?? '{}');
const ADD_PER_SECOND = env('ADD_PER_SECOND', 100);
const WRITES_PER_SECOND = env('WRITES_PER_SECOND', 100);
const JOB_MS = env('JOB_MS', 50);
const CONCURRENCY = env('CONCURRENCY', 10);
const QUIET_MS = env('QUIET_MS', 10000);
const DEADLINE_MS = env('DEADLINE_MS', 60000);
const QUEUE = process.env.QUEUE ?? `drill-${process.pid}`;
const WRITE_PREFIX = process.env.WRITE_PREFIX ?? `drill:${process.pid}:w:`;

const started = Date.now();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const emit = (ev, extra = {}) => process.stdout.write(JSON.stringify({ ev, t: Date.now(), ...extra }) + '\n');
const message = (err) => String(err?.message ?? err);

function connectionOptions(extra = {}) {
  const { retryStrategy, reconnectOnError, ...rest } = CLIENT_OPTIONS;
  const options = { sentinels: SENTINELS, name: MASTER_NAME, ...rest, ...extra };
  if (process.env.VALKEY_PASSWORD) {
    // AUTH: the nodes' and the Sentinels' password (Sentinel.ioredis_secret_options), from the env.
    options.password = process.env.VALKEY_PASSWORD;
    options.sentinelPassword = process.env.VALKEY_PASSWORD;
  }
  if (retryStrategy) {
    const { stepMs, maxMs } = retryStrategy;
    options.retryStrategy = (times) => Math.min(stepMs * times, maxMs);
  }
  if (reconnectOnError) {
    // Reconnect (through the Sentinels) and resend the command on these error prefixes.
    options.reconnectOnError = (err) => (reconnectOnError.some((p) => err.message.startsWith(p)) ? 2 : false);
  }
  return options;
}

const added = new Set();
const starts = new Map(); // i -> times the processor started it
const completed = new Set();
let writesAcked = 0;
let writeErrors = 0;
let addErrors = 0;
let workerErrors = 0;
let lastProgress = Date.now();
let stopping = false;

// BullMQ forces maxRetriesPerRequest: null on the worker's blocking connection itself.
const queue = new Queue(QUEUE, { connection: connectionOptions() });
queue.on('error', (err) => emit('queue-error', { msg: message(err) }));
const worker = new Worker(
  QUEUE,
  async (job) => {
    const i = job.data.i;
    const n = (starts.get(i) ?? 0) + 1;
    starts.set(i, n);
    emit('started', { i, n });
    await sleep(JOB_MS);
    return i;
  },
  { connection: connectionOptions(), concurrency: CONCURRENCY, ...WORKER_OPTIONS },
);
worker.on('completed', (job) => {
  completed.add(job.data.i);
  lastProgress = Date.now();
  emit('completed', { i: job.data.i });
});
worker.on('failed', (job, err) => emit('failed', { i: job?.data?.i ?? null, msg: message(err) }));
worker.on('error', (err) => {
  workerErrors += 1;
  if (workerErrors <= 20) emit('worker-error', { msg: message(err) });
});
const writer = new Redis(connectionOptions());
writer.on('error', () => {}); // counted per command below
// Connection state changes of the writer, for the failover timeline.
for (const what of ['close', 'reconnecting', 'ready', 'connect']) {
  writer.on(what, () => emit('writer-conn', { what }));
}

async function produce() {
  const period = 1000 / ADD_PER_SECOND;
  let due = Date.now();
  for (let i = 0; !stopping; i += 1) {
    // A steady pace, no burst to catch up after an outage.
    due = Math.max(due + period, Date.now());
    await sleep(due - Date.now());
    for (;;) {
      try {
        await queue.add('drill', { i }, { jobId: `job-${i}`, removeOnComplete: false });
        added.add(i);
        emit('added', { i });
        break;
      } catch (err) {
        addErrors += 1;
        emit('add-error', { i, msg: message(err) });
        if (stopping) return;
        await sleep(100);
      }
    }
  }
}

async function write() {
  const period = 1000 / WRITES_PER_SECOND;
  let due = Date.now();
  for (let n = 0; !stopping; n += 1) {
    due = Math.max(due + period, Date.now());
    await sleep(due - Date.now());
    try {
      await writer.set(`${WRITE_PREFIX}${n}`, String(n));
      writesAcked += 1;
      emit('written', { n });
    } catch (err) {
      writeErrors += 1;
      emit('write-error', { n, msg: message(err) });
    }
  }
}

async function main() {
  await queue.waitUntilReady();
  await worker.waitUntilReady();
  emit('ready', { queue: QUEUE, write_prefix: WRITE_PREFIX });
  const stopped = new Promise((resolve) => {
    readline.createInterface({ input: process.stdin }).on('line', (line) => {
      if (line.trim() === 'stop') resolve();
    });
  });
  const loops = Promise.all([produce(), write()]);
  await stopped;
  stopping = true;
  await loops;
  emit('stopped', { added: added.size });
  lastProgress = Date.now();
  const deadline = started + DEADLINE_MS;
  let reason = 'done';
  while ([...added].some((i) => !completed.has(i))) {
    if (Date.now() > deadline) {
      reason = 'deadline';
      break;
    }
    if (Date.now() - lastProgress > QUIET_MS) {
      reason = 'quiet';
      break;
    }
    await sleep(50);
  }
  const states = {};
  for (const i of added) {
    if (completed.has(i)) continue;
    states[i] = await queue.getJobState(`job-${i}`);
  }
  const twice = [...starts].filter(([, n]) => n > 1).map(([i, n]) => [i, n]);
  emit('summary', {
    reason,
    added: added.size,
    completed: completed.size,
    not_completed: states,
    run_twice: twice,
    writes_acked: writesAcked,
    write_errors: writeErrors,
    add_errors: addErrors,
    worker_errors: workerErrors,
  });
  await worker.close(true);
  await queue.close();
  writer.disconnect();
}

main()
  .then(() => process.exit(0))
  .catch((err) => {
    emit('fatal', { msg: message(err) });
    process.exit(1);
  });
