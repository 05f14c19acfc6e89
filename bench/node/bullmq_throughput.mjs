// Benchmark 3: jobs per second end to end with real BullMQ (producer + worker) over ioredis.
//
//   node bench/node/bullmq_throughput.mjs '{"port":6379,"jobs":20000,"concurrency":20,"producers":20}'
//
// One Queue adds `jobs` jobs (`producers` concurrent `queue.add` loops, as web handlers would),
// one Worker with `concurrency` processes them with a no-op processor, both in this process.
// Jobs use removeOnComplete {count: 1000} like a production queue. Valkey's INFO commandstats and
// INFO stats/cpu are read on a separate connection right before the first add and right after
// the last completion, so the deltas count the commands of the jobs and nothing else (plus the
// worker's blocking polls). Prints one JSON object on stdout.
import { Queue, Worker } from "bullmq";
import IORedis from "ioredis";

const opts = JSON.parse(process.argv[2] ?? "{}");
const port = Number(opts.port ?? 6379);
const jobs = Number(opts.jobs ?? 1000);
const concurrency = Number(opts.concurrency ?? 20);
const producers = Number(opts.producers ?? 20);
const timeoutMs = Number(opts.timeoutMs ?? 300000);

const connection = { host: "127.0.0.1", port, maxRetriesPerRequest: null };
const name = `bench-${process.pid}-${Date.now()}`;

function parseInfo(text) {
  const out = {};
  for (const line of text.split("\r\n")) {
    const i = line.indexOf(":");
    if (i > 0 && !line.startsWith("#")) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

async function snapshot(conn) {
  const stats = parseInfo(await conn.info("stats"));
  const cpu = parseInfo(await conn.info("cpu"));
  const cmd = parseInfo(await conn.info("commandstats"));
  const calls = {};
  for (const [key, value] of Object.entries(cmd)) {
    const m = /calls=(\d+)/.exec(value);
    if (m) calls[key.replace(/^cmdstat_/, "")] = Number(m[1]);
  }
  return {
    totalCommands: Number(stats.total_commands_processed),
    cpuSeconds: Number(cpu.used_cpu_user) + Number(cpu.used_cpu_sys),
    calls,
  };
}

function payload(i) {
  return {
    to: `user-${i}@example.com`,
    template: "welcome",
    locale: "en-GB",
    vars: { name: "Ada Lovelace", plan: "pro", trialDays: 14 },
    requestId: `req-${i}`,
  };
}

const probe = new IORedis(connection);
const queue = new Queue(name, {
  connection,
  defaultJobOptions: { removeOnComplete: { count: 1000 }, removeOnFail: { count: 5000 }, attempts: 3 },
});
let completed = 0;
let failed = 0;
let resolveDone;
const done = new Promise((resolve) => {
  resolveDone = resolve;
});
const worker = new Worker(name, async () => ({ ok: true }), { connection, concurrency, autorun: true });
worker.on("completed", () => {
  completed += 1;
  if (completed + failed === jobs) resolveDone();
});
worker.on("failed", () => {
  failed += 1;
  if (completed + failed === jobs) resolveDone();
});
worker.on("error", (err) => console.error("worker error:", err.message));

await queue.waitUntilReady();
await worker.waitUntilReady();
await new Promise((r) => setTimeout(r, 200)); // let the worker reach its blocking wait

const before = await snapshot(probe);
const t0 = performance.now();
let next = 0;
async function produce() {
  while (next < jobs) {
    const i = next++;
    await queue.add("email", payload(i));
  }
}
await Promise.all(Array.from({ length: producers }, produce));
const tAdded = performance.now();
const timer = setTimeout(() => {
  console.error(`timeout: ${completed} of ${jobs} completed after ${timeoutMs} ms`);
  process.exit(2);
}, timeoutMs);
await done;
clearTimeout(timer);
const t1 = performance.now();
const after = await snapshot(probe);

const calls = {};
for (const [cmd, n] of Object.entries(after.calls)) {
  const delta = n - (before.calls[cmd] ?? 0);
  if (delta > 0) calls[cmd] = delta;
}
// the three INFO calls of the second snapshot are counted in `after`
calls.info = (calls.info ?? 0) - 3;
if (calls.info <= 0) delete calls.info;

await worker.close();
await queue.obliterate({ force: true }).catch(() => {});
await queue.close();
probe.disconnect();

console.log(
  JSON.stringify({
    jobs,
    completed,
    failed,
    concurrency,
    producers,
    seconds: (t1 - t0) / 1000,
    addSeconds: (tAdded - t0) / 1000,
    totalCommands: after.totalCommands - before.totalCommands - 3,
    serverCpuSeconds: after.cpuSeconds - before.cpuSeconds,
    calls,
  }),
);
