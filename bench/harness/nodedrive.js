// Node drivers for the benchmark harness (bench/run.sh); protocol as in
// pydrive.py: "READY", then "RESULT {json}"; consumers log
// "index due_ms recv_ms" per message to --out and run until SIGTERM.
//
//   node nodedrive.js SYSTEM OP --url URL [--n N --start MS --span MS
//                     --delay MS --batch B --payload BYTES --out FILE]
// SYSTEM: bullmq (produce, consume), ioredis (sub).
'use strict';
const fs = require('fs');

const [system, op, ...rest] = process.argv.slice(2);
const o = { queue: 'bench', channel: 'bench', n: '1000', start: '0', span: '0', delay: '0',
  batch: '0', payload: '100', out: '/dev/null' };
for (let i = 0; i + 1 < rest.length; i += 2) o[rest[i].replace(/^--/, '')] = rest[i + 1];
const N = +o.n, START = +o.start, SPAN = +o.span, DELAY = +o.delay, BATCH = +o.batch, PSIZE = +o.payload;
const u = new URL(o.url);
const connection = { host: u.hostname, port: +u.port, maxRetriesPerRequest: null };

const dueOf = (i) => (START > 0 ? START + Math.floor(i * SPAN / N) : 0);
function payload(i, due) {
  const p = `${i}:${Math.floor(due)}:`;
  return p + 'x'.repeat(Math.max(0, PSIZE - p.length));
}
const say = (s) => process.stdout.write(s + '\n');
const result = (r) => say('RESULT ' + JSON.stringify(r));
const now = () => performance.timeOrigin + performance.now();

async function bullmqProduce() {
  const { Queue } = require('bullmq');
  const q = new Queue(o.queue, { connection });
  await q.waitUntilReady();
  const job = (i) => {
    const due = dueOf(i);
    if (due > 0) return { name: 'j', data: { p: payload(i, due) }, opts: { delay: Math.max(0, due - Date.now()) } };
    if (DELAY > 0) return { name: 'j', data: { p: payload(i, 0) }, opts: { delay: DELAY } };
    return { name: 'j', data: { p: payload(i, Date.now()) }, opts: {} };
  };
  say('READY');
  const t0 = performance.now();
  if (BATCH > 0) {
    for (let s = 0; s < N; s += BATCH) {
      const a = [];
      for (let i = s; i < Math.min(N, s + BATCH); i++) a.push(job(i));
      await q.addBulk(a);
    }
  } else {
    for (let i = 0; i < N; i++) { const j = job(i); await q.add(j.name, j.data, j.opts); }
  }
  const s = (performance.now() - t0) / 1000;
  result({ n: N, seconds: s, rate: N / s, batched: BATCH > 0 });
  await q.close();
}

async function bullmqConsume() {
  const { Worker } = require('bullmq');
  const fd = fs.openSync(o.out, 'a');
  const w = new Worker(o.queue, async (job) => {
    const recv = now();
    const [i, due] = job.data.p.split(':', 2);
    fs.writeSync(fd, `${i} ${due} ${recv.toFixed(3)}\n`);
  }, { connection });
  await w.waitUntilReady();
  const stop = async () => { await w.close(); fs.closeSync(fd); result({ count: -1 }); process.exit(0); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  say('READY');
}

async function ioredisSub() {
  const Redis = require('ioredis');
  const r = new Redis(o.url);
  let got = 0, t0 = 0;
  r.on('message', () => {
    got++;
    if (got === N) {
      const s = (performance.now() - t0) / 1000;
      result({ n: got, seconds: s, rate: got / s });
      process.exit(0);
    }
  });
  await r.subscribe(o.channel);
  r.stream.pause(); // read nothing until GO: the server buffers, as for the other subscribers
  say('READY');
  process.stdin.once('data', () => { t0 = performance.now(); r.stream.resume(); });
  setTimeout(() => { result({ n: got, seconds: (performance.now() - t0) / 1000, rate: 0 }); process.exit(1); }, 300000).unref();
}

const table = { 'bullmq produce': bullmqProduce, 'bullmq consume': bullmqConsume, 'ioredis sub': ioredisSub };
const fn = table[`${system} ${op}`];
if (!fn) { console.error(`nodedrive: ${system} does not support ${op}`); process.exit(2); }
fn().catch((e) => { console.error(e); process.exit(1); });
