// BullMQ and plain writes through Valkey Sentinel during a fault, loaded as applications load it;
// driven by tests/test_sentinel_failover.py (run inside a client pod's network namespace).
//
// Clients, each on its own ioredis connection found through the Sentinels:
//   add-await    adds job add-await-<n> at ADD_PER_SECOND, one at a time: the next add waits for
//                the reply; a failed add is retried with the same jobId (idempotent) until
//                acknowledged;
//   set-await    SET <WRITE_PREFIX>set-await:<n> <n> at WRITES_PER_SECOND, one at a time; a
//                failed write is reported and not retried;
//   add-open-<k> (OPEN_ADDERS of them) and set-open-<k> (OPEN_WRITERS): open loop, the usual
//                web-app pattern: a command every 1/OPEN_PER_SECOND s whether or not the earlier
//                ones were answered, each reply recorded; nothing retried;
//   worker       one BullMQ Worker (CONCURRENCY, JOB_MS per job).
// Every acknowledged write and job is checked by the test afterwards, on the final primary.
//
// Connection options: SENTINELS (JSON [{host, port}]), MASTER_NAME, CLIENT_OPTIONS (JSON ioredis
// options for every connection; "retryStrategy": {"stepMs": a, "maxMs": b} becomes
// times => min(a * times, b), and "reconnectOnError": ["READONLY", ...] becomes
// err => prefix matches ? 2 : false, as docs/sentinel.md writes it: 2 reconnects and resends the
// command that failed). PRODUCER_OPTIONS (JSON) are extra ioredis options of the four producers'
// connections only (commandTimeout: a reply later than that is an error, not an acknowledgement),
// never of the worker's. PRODUCER_WAIT (JSON {"replicas": r, "timeoutMs": t}) makes every producer
// send WAIT r t after each acknowledged command and count it acknowledged only if WAIT reports r
// replicas. VALKEY_PASSWORD, when set, becomes ioredis `password` and `sentinelPassword`
// (unless CLIENT_OPTIONS names them). WORKER_OPTIONS (JSON): extra BullMQ Worker options.
//
// stdin: "stop" stops the producers; then the script waits until every acknowledged job was
// completed at least once (or nothing moved for QUIET_MS, or DEADLINE_MS passed) and prints a
// summary.
// stdout: one JSON object per line, {"ev": ..., "t": <ms since epoch>, ...}:
//   ready {queue, write_prefix, clients}, ack {c, n}, nack {c, n, msg}, started {id, n},
//   completed {id}, failed {id, msg}, worker-error {msg}, queue-error {c, msg},
//   writer-conn {what}, stopped, summary {...}, fatal {msg}.
// A job's id and a write's key suffix are "<client>-<n>" and "<client>:<n>".
// Run from the repo root (node resolves bullmq and ioredis from ./node_modules).
import { Queue, Worker } from 'bullmq';
import Redis from 'ioredis';
import readline from 'node:readline';

const env = (name, fallback) => Number(process.env[name] ?? fallback);
const json = (name, fallback) => JSON.parse(process.env[name] ?? fallback);
const SENTINELS = json('SENTINELS', '[]');
const MASTER_NAME = process.env.MASTER_NAME ?? '';
if (SENTINELS.length === 0 || MASTER_NAME === '') {
  console.error('SENTINELS and MASTER_NAME are required');
  process.exit(64);
}
const CLIENT_OPTIONS = json('CLIENT_OPTIONS', '{}');
const PRODUCER_OPTIONS = json('PRODUCER_OPTIONS', '{}');
const PRODUCER_WAIT = json('PRODUCER_WAIT', 'null');
const WORKER_OPTIONS = json('WORKER_OPTIONS', '{}');
const PASSWORD = process.env.VALKEY_PASSWORD ?? '';
const ADD_PER_SECOND = env('ADD_PER_SECOND', 100);
const WRITES_PER_SECOND = env('WRITES_PER_SECOND', 100);
const OPEN_PER_SECOND = env('OPEN_PER_SECOND', 100);
const OPEN_ADDERS = env('OPEN_ADDERS', 1);
const OPEN_WRITERS = env('OPEN_WRITERS', 1);
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
  const secret = PASSWORD === '' ? {} : { password: PASSWORD, sentinelPassword: PASSWORD };
  const options = { sentinels: SENTINELS, name: MASTER_NAME, ...secret, ...rest, ...extra };
  if (retryStrategy) {
    const { stepMs, maxMs } = retryStrategy;
    options.retryStrategy = (times) => Math.min(stepMs * times, maxMs);
  }
  if (reconnectOnError) {
    // 2: reconnect (through the Sentinels: a demoted primary answers READONLY) and resend the
    // command that failed; true would reconnect and hand the error to the caller.
    options.reconnectOnError = (err) => (reconnectOnError.some((p) => err.message.startsWith(p)) ? 2 : false);
  }
  return options;
}
const producerOptions = () => connectionOptions(PRODUCER_OPTIONS);

const acked = new Set(); // job ids acknowledged to a producer
const starts = new Map(); // job id -> times the processor started it
const completed = new Set();
const counts = {}; // client -> {ack, nack}
let workerErrors = 0;
let lastProgress = Date.now();
let stopping = false;

function count(c, what) {
  counts[c] ??= { ack: 0, nack: 0 };
  counts[c][what] += 1;
}

// An acknowledgement, optionally confirmed by WAIT on the same connection (it covers every
// earlier write of that connection).
async function confirmed(client, reply) {
  const value = await reply;
  if (PRODUCER_WAIT) {
    const got = await client.wait(PRODUCER_WAIT.replicas, PRODUCER_WAIT.timeoutMs);
    if (got < PRODUCER_WAIT.replicas) throw new Error(`WAIT ${got} of ${PRODUCER_WAIT.replicas} replicas`);
  }
  return value;
}

function newQueue(c, options) {
  const queue = new Queue(QUEUE, { connection: options });
  queue.on('error', (err) => emit('queue-error', { c, msg: message(err) }));
  return queue;
}

function newWriter(c) {
  const writer = new Redis(producerOptions());
  writer.on('error', () => {}); // counted per command
  if (c === 'set-await') {
    // Connection state changes of one writer, for the failover timeline.
    for (const what of ['close', 'reconnecting', 'ready', 'connect']) {
      writer.on(what, () => emit('writer-conn', { what }));
    }
  }
  return writer;
}

// Each producer: fire(n) returns a promise of the acknowledgement of its n-th command.
const producers = [];
function addProducer(c, open, rate, fire) {
  producers.push({ c, open, rate, fire });
}
const adder = (c, queue) => async (n) => {
  const id = `${c}-${n}`;
  // BullMQ 6: the raw ioredis connection of the adds is the backend's.
  await confirmed(await queue.getBackend().client, queue.add('drill', { id }, { jobId: id, removeOnComplete: false }));
  acked.add(id);
};
const setter = (c, writer) => (n) => confirmed(writer, writer.set(`${WRITE_PREFIX}${c}:${n}`, String(n)));

const queues = [];
const writers = [];
{
  const q = newQueue('add-await', producerOptions());
  queues.push(q);
  addProducer('add-await', false, ADD_PER_SECOND, adder('add-await', q));
  const w = newWriter('set-await');
  writers.push(w);
  addProducer('set-await', false, WRITES_PER_SECOND, setter('set-await', w));
  for (let k = 0; k < OPEN_ADDERS; k += 1) {
    const c = `add-open-${k}`;
    const oq = newQueue(c, producerOptions());
    queues.push(oq);
    addProducer(c, true, OPEN_PER_SECOND, adder(c, oq));
  }
  for (let k = 0; k < OPEN_WRITERS; k += 1) {
    const c = `set-open-${k}`;
    const ow = newWriter(c);
    writers.push(ow);
    addProducer(c, true, OPEN_PER_SECOND, setter(c, ow));
  }
}

// BullMQ forces maxRetriesPerRequest: null on the worker's blocking connection itself.
const worker = new Worker(
  QUEUE,
  async (job) => {
    const id = job.data.id;
    const n = (starts.get(id) ?? 0) + 1;
    starts.set(id, n);
    emit('started', { id, n });
    await sleep(JOB_MS);
    return id;
  },
  { connection: connectionOptions(), concurrency: CONCURRENCY, ...WORKER_OPTIONS },
);
worker.on('completed', (job) => {
  completed.add(job.data.id);
  lastProgress = Date.now();
  emit('completed', { id: job.data.id });
});
worker.on('failed', (job, err) => emit('failed', { id: job?.data?.id ?? null, msg: message(err) }));
worker.on('error', (err) => {
  workerErrors += 1;
  if (workerErrors <= 20) emit('worker-error', { msg: message(err) });
});

// One at a time at a steady pace, no burst to catch up after an outage; an awaiting adder
// retries the same job until acknowledged.
async function awaiting({ c, rate, fire }) {
  const period = 1000 / rate;
  let due = Date.now();
  for (let n = 0; !stopping; n += 1) {
    due = Math.max(due + period, Date.now());
    await sleep(due - Date.now());
    for (;;) {
      try {
        await fire(n);
        count(c, 'ack');
        emit('ack', { c, n });
        break;
      } catch (err) {
        count(c, 'nack');
        emit('nack', { c, n, msg: message(err) });
        if (stopping || !c.startsWith('add')) break;
        await sleep(100);
      }
    }
  }
}

// Open loop: commands leave on schedule whatever happened to the earlier ones; every reply (or
// error) is recorded when it comes. Resolves once every command fired has its outcome.
function openLoop({ c, rate, fire }) {
  const period = 1000 / rate;
  const pending = new Set();
  let n = 0;
  let due = Date.now();
  return new Promise((resolve) => {
    const tick = () => {
      if (stopping) {
        Promise.allSettled([...pending]).then(resolve);
        return;
      }
      // A timer that fired late sends what was due meanwhile (at most 10), like arriving requests.
      for (let burst = 0; due <= Date.now() && burst < 10; burst += 1, due += period) {
        const i = n;
        n += 1;
        const p = fire(i).then(
          () => {
            count(c, 'ack');
            emit('ack', { c, n: i });
          },
          (err) => {
            count(c, 'nack');
            emit('nack', { c, n: i, msg: message(err) });
          },
        );
        pending.add(p);
        p.finally(() => pending.delete(p));
      }
      due = Math.max(due, Date.now() - period);
      setTimeout(tick, Math.max(0, due - Date.now()));
    };
    tick();
  });
}

async function main() {
  await Promise.all(queues.map((q) => q.waitUntilReady()));
  await worker.waitUntilReady();
  emit('ready', { queue: QUEUE, write_prefix: WRITE_PREFIX, clients: producers.map((p) => p.c) });
  const stopped = new Promise((resolve) => {
    readline.createInterface({ input: process.stdin }).on('line', (line) => {
      if (line.trim() === 'stop') resolve();
    });
  });
  const loops = Promise.all(producers.map((p) => (p.open ? openLoop(p) : awaiting(p))));
  await stopped;
  stopping = true;
  // A frozen or unreachable primary can hold open-loop replies: bounded by DEADLINE_MS below.
  await Promise.race([loops, sleep(Math.max(0, started + DEADLINE_MS - Date.now()))]);
  emit('stopped', { acked_jobs: acked.size });
  lastProgress = Date.now();
  const deadline = started + DEADLINE_MS;
  let reason = 'done';
  while ([...acked].some((id) => !completed.has(id))) {
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
  emit('summary', {
    reason,
    clients: counts,
    acked_jobs: acked.size,
    completed: completed.size,
    not_completed_by_worker: [...acked].filter((id) => !completed.has(id)).length,
    run_twice: [...starts].filter(([, n]) => n > 1),
    worker_errors: workerErrors,
  });
  await worker.close(true);
  await Promise.all(queues.map((q) => q.close()));
  for (const w of writers) w.disconnect();
}

main()
  .then(() => process.exit(0))
  .catch((err) => {
    emit('fatal', { msg: message(err) });
    process.exit(1);
  });
