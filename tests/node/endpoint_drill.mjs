// BullMQ and plain writes through the primary endpoint (HAProxy behind the client Service)
// during a fault, driven by tests/test_primary_endpoint_drills.py (run inside a client pod's
// network namespace). Plain ioredis: host and port only, no Sentinel.
//
// Open loop, as web apps load a queue: neither the producer nor the writer waits for a reply
// before the next command.
//   producer  queue.add(job-<i>) every 1000/ADD_PER_SECOND ms; an add that fails is sent again
//             (same jobId: idempotent) after 100 ms, without holding up the next ones;
//   worker    one BullMQ Worker (CONCURRENCY, JOB_MS per job);
//   writer    SET <WRITE_PREFIX><n> <n> every 1000/WRITES_PER_SECOND ms; a failed write is
//             counted, not retried (the test reads every acknowledged one back afterwards).
// Env: HOST, PORT (the endpoint), QUEUE, WRITE_PREFIX, rates as above, QUIET_MS, DEADLINE_MS.
//
// stdin: "stop" stops the producer and the writer; the script then waits until every added job
// completed (or nothing moved for QUIET_MS, or DEADLINE_MS passed), reads the state of EVERY
// acknowledged job (completed ones too: a record lost after completion counts) and prints a
// summary. stdout: one JSON object per line, {"ev": ..., "t": <ms since epoch>, ...}: ready,
// added {i}, completed {i}, written {n}, write-error {n, msg}, add-error {i, msg},
// worker-error {msg}, conn {what}, summary {...}, fatal {msg}.
import { Queue, Worker } from 'bullmq';
import Redis from 'ioredis';
import readline from 'node:readline';

const env = (name, fallback) => Number(process.env[name] ?? fallback);
const HOST = process.env.HOST ?? '';
const PORT = env('PORT', 6379);
if (HOST === '') {
  console.error('HOST is required');
  process.exit(64);
}
const ADD_PER_SECOND = env('ADD_PER_SECOND', 100);
const WRITES_PER_SECOND = env('WRITES_PER_SECOND', 100);
const JOB_MS = env('JOB_MS', 20);
const CONCURRENCY = env('CONCURRENCY', 10);
const QUIET_MS = env('QUIET_MS', 8000);
const DEADLINE_MS = env('DEADLINE_MS', 90000);
const QUEUE = process.env.QUEUE ?? `endpoint-${process.pid}`;
const WRITE_PREFIX = process.env.WRITE_PREFIX ?? `endpoint:${process.pid}:w:`;

const started = Date.now();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const emit = (ev, extra = {}) => process.stdout.write(JSON.stringify({ ev, t: Date.now(), ...extra }) + '\n');
const message = (err) => String(err?.message ?? err);

// What an app that knows one host and port sets: reconnect fast (BullMQ's own strategy waits 1 s
// and more), give up on an unreachable address after 1 s, keep commands queued meanwhile.
const connection = () => ({
  host: HOST,
  port: PORT,
  connectTimeout: 1000,
  maxRetriesPerRequest: null,
  retryStrategy: (times) => Math.min(times * 100, 1000),
});

const added = new Set();
const completed = new Set();
let writesAcked = 0;
let writeErrors = 0;
let addErrors = 0;
let workerErrors = 0;
let lastProgress = Date.now();
let stopping = false;
const pending = new Set();

const queue = new Queue(QUEUE, { connection: connection() });
queue.on('error', () => {});
const worker = new Worker(
  QUEUE,
  async (job) => {
    await sleep(JOB_MS);
    return job.data.i;
  },
  { connection: connection(), concurrency: CONCURRENCY },
);
worker.on('completed', (job) => {
  completed.add(job.data.i);
  lastProgress = Date.now();
  emit('completed', { i: job.data.i });
});
worker.on('error', (err) => {
  workerErrors += 1;
  if (workerErrors <= 20) emit('worker-error', { msg: message(err) });
});
const writer = new Redis(connection());
writer.on('error', () => {}); // counted per command below
for (const what of ['close', 'reconnecting', 'ready']) {
  writer.on(what, () => emit('conn', { what }));
}

function add(i) {
  const p = queue
    .add('drill', { i }, { jobId: `job-${i}`, removeOnComplete: false })
    .then(() => {
      added.add(i);
      emit('added', { i });
    })
    .catch(async (err) => {
      addErrors += 1;
      emit('add-error', { i, msg: message(err) });
      await sleep(100);
      add(i);
    })
    .finally(() => pending.delete(p));
  pending.add(p);
}

function write(n) {
  const p = writer
    .set(`${WRITE_PREFIX}${n}`, String(n))
    .then(() => {
      writesAcked += 1;
      emit('written', { n });
    })
    .catch((err) => {
      writeErrors += 1;
      emit('write-error', { n, msg: message(err) });
    })
    .finally(() => pending.delete(p));
  pending.add(p);
}

async function openLoop(rate, send) {
  const period = 1000 / rate;
  let due = Date.now();
  for (let i = 0; !stopping; i += 1) {
    due = Math.max(due + period, Date.now()); // a steady pace, no burst after an outage
    await sleep(due - Date.now());
    send(i);
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
  const loops = Promise.all([openLoop(ADD_PER_SECOND, add), openLoop(WRITES_PER_SECOND, write)]);
  await stopped;
  stopping = true;
  await loops;
  const deadline = started + DEADLINE_MS;
  while (pending.size > 0 && Date.now() < deadline) await sleep(50);
  emit('stopped', { added: added.size, pending: pending.size });
  lastProgress = Date.now();
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
    const state = await queue.getJobState(`job-${i}`);
    if (state !== 'completed') states[i] = state;
  }
  emit('summary', {
    reason,
    added: added.size,
    completed_seen: completed.size,
    not_completed: states,
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
