// BullMQ replay across a Valkey crash, driven by tests/test_reliability_bullmq.py.
//
// A producer adds JOBS jobs (jobId job-<i>, so a retried add is idempotent) at ADD_PER_SECOND;
// one Worker (CONCURRENCY, JOB_MS per job, short lock and stall settings) processes them. The
// Python test SIGKILLs and restarts Valkey meanwhile, then writes "restarted" on stdin. Once
// every added job has finished (or nothing moved for QUIET_MS after the restart, or DEADLINE_MS
// passed), the script reads each job's final state from Valkey and prints a summary.
//
// Output: one JSON object per line on stdout, {"ev": ..., "t": <ms since epoch>, ...}.
// Run from the repo root (node resolves bullmq and ioredis from ./node_modules).
import { Queue, Worker } from 'bullmq';
import readline from 'node:readline';

const env = (name, fallback) => Number(process.env[name] ?? fallback);
const port = env('VALKEY_PORT', NaN);
if (!Number.isInteger(port)) {
  console.error('VALKEY_PORT is required');
  process.exit(64);
}
const JOBS = env('JOBS', 300);
const ADD_PER_SECOND = env('ADD_PER_SECOND', 150);
const JOB_MS = env('JOB_MS', 100);
const CONCURRENCY = env('CONCURRENCY', 10);
const LOCK_MS = env('LOCK_MS', 2000);
const STALLED_INTERVAL_MS = env('STALLED_INTERVAL_MS', 1000);
const MAX_STALLED = env('MAX_STALLED', 2);
const QUIET_MS = env('QUIET_MS', 8000);
const DEADLINE_MS = env('DEADLINE_MS', 45000);
const QUEUE = process.env.QUEUE ?? `replay-${process.pid}`;

const started = Date.now();
const deadline = started + DEADLINE_MS;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const emit = (ev, extra = {}) => process.stdout.write(JSON.stringify({ ev, t: Date.now(), ...extra }) + '\n');
const message = (err) => String(err?.message ?? err);

// Reconnect quickly; the worker's commands wait for the reconnect (BullMQ requires null there),
// the producer's fail after one retry so that it retries the add itself.
const retryStrategy = (times) => Math.min(times * 100, 500);
const workerConnection = { host: '127.0.0.1', port, maxRetriesPerRequest: null, retryStrategy };
const queueConnection = { host: '127.0.0.1', port, maxRetriesPerRequest: 1, retryStrategy };

const addedAt = new Map(); // i -> ms when queue.add resolved
const starts = new Map(); // i -> times the processor started it
const finished = new Map(); // i -> 'completed' | 'failed' (worker events)
let inflight = 0;
let addErrors = 0;
let workerErrors = 0;
let lastProgress = Date.now();
let restartedAt = null;
let produced = false;

const queue = new Queue(QUEUE, { connection: queueConnection });
queue.on('error', (err) => emit('queue-error', { msg: message(err) }));

const worker = new Worker(
  QUEUE,
  async (job) => {
    const i = job.data.i;
    starts.set(i, (starts.get(i) ?? 0) + 1);
    inflight += 1;
    emit('active', { i, attempt: starts.get(i), inflight });
    try {
      await sleep(JOB_MS);
    } finally {
      inflight -= 1;
    }
    return { i };
  },
  {
    connection: workerConnection,
    concurrency: CONCURRENCY,
    lockDuration: LOCK_MS,
    stalledInterval: STALLED_INTERVAL_MS,
    maxStalledCount: MAX_STALLED,
  },
);
worker.on('completed', (job) => {
  finished.set(job.data.i, 'completed');
  lastProgress = Date.now();
  emit('completed', { i: job.data.i });
});
worker.on('failed', (job, err) => {
  if (job) finished.set(job.data.i, 'failed');
  lastProgress = Date.now();
  emit('failed', { i: job?.data?.i ?? null, reason: message(err) });
});
worker.on('stalled', (jobId) => emit('stalled', { id: jobId }));
worker.on('error', (err) => {
  workerErrors += 1;
  if (workerErrors <= 20) emit('worker-error', { msg: message(err) });
});

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() === 'restarted') {
    restartedAt = Date.now();
    lastProgress = restartedAt;
    emit('restart-noted');
  }
});

async function produce() {
  for (let i = 0; i < JOBS; i += 1) {
    const due = started + (i * 1000) / ADD_PER_SECOND;
    if (due > Date.now()) await sleep(due - Date.now());
    while (Date.now() < deadline) {
      try {
        await queue.add('job', { i }, { jobId: `job-${i}` });
        addedAt.set(i, Date.now());
        lastProgress = Date.now();
        emit('added', { i, inflight });
        break;
      } catch (err) {
        addErrors += 1;
        emit('add-error', { i, msg: message(err) });
        await sleep(200);
      }
    }
  }
  produced = true;
  emit('produced', { added: addedAt.size });
}

async function settle() {
  while (Date.now() < deadline) {
    const allDone = produced && [...addedAt.keys()].every((i) => finished.has(i));
    const quiet = restartedAt !== null && Date.now() - lastProgress > QUIET_MS;
    if (allDone || quiet) return allDone ? 'all-finished' : 'quiet';
    await sleep(100);
  }
  return 'deadline';
}

async function main() {
  emit('ready', { queue: QUEUE });
  const producing = produce();
  const reason = await settle();
  await Promise.race([producing, sleep(1000)]);
  const jobs = [];
  for (let i = 0; i < JOBS; i += 1) {
    const job = await queue.getJob(`job-${i}`);
    const state = job ? await job.getState() : 'missing';
    jobs.push({
      i,
      added_at: addedAt.get(i) ?? null,
      state,
      starts: starts.get(i) ?? 0,
      attempts_started: job?.attemptsStarted ?? null,
      stalled_counter: job?.stalledCounter ?? null,
      failed_reason: job?.failedReason ?? null,
    });
  }
  emit('summary', { reason, queue: QUEUE, add_errors: addErrors, worker_errors: workerErrors, jobs });
  await worker.close(true);
  await queue.close();
}

main()
  .then(() => process.exit(0))
  .catch((err) => {
    emit('fatal', { msg: message(err) });
    process.exit(1);
  });
