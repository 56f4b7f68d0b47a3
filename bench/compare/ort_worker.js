// ONNX Runtime (onnxruntime-node, CPU execution provider) worker for bench/compare/compare.py.
// Reads one JSON command per line on stdin, answers one JSON line on stdout:
//   {"cmd":"load","key":K,"path":FILE.onnx,"threads":N}     -> {"ok":true,"seconds":S}
//   {"cmd":"run","key":K,"batch":B,"seq":T,"warmup":W,"runs":R,"seed":X}
//                                                             -> {"ok":true,"ms":[R times]}
//   {"cmd":"infer","key":K,"batch":B,"seq":T,"ids":[...],"mask":[...]}
//                                                             -> {"ok":true,"shape":[..],"data":BASE64 f32}
//   {"cmd":"free","key":K} / {"cmd":"info"} / {"cmd":"quit"}
// Sessions: intraOpNumThreads = N, interOpNumThreads = 1, sequential execution, all graph
// optimisations. Only session.run() is timed; the input tensors are made beforehand.
'use strict';
const ort = require('onnxruntime-node');
const readline = require('readline');

const sessions = new Map();

function ids_for(batch, seq, seed) {
  // Deterministic ids: <s> x ... </s> per row, every position real (mask all ones).
  let s = (seed >>> 0) || 1;
  const ids = new BigInt64Array(batch * seq);
  for (let b = 0; b < batch; ++b)
    for (let t = 0; t < seq; ++t) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      ids[b * seq + t] = BigInt(t === 0 ? 0 : t === seq - 1 ? 2 : 3 + (s % 249999));
    }
  const mask = new BigInt64Array(batch * seq).fill(1n);
  return {ids, mask};
}

async function handle(c) {
  if (c.cmd === 'info') return {ok: true, versions: ort.env.versions};
  if (c.cmd === 'load') {
    const t0 = process.hrtime.bigint();
    const s = await ort.InferenceSession.create(c.path, {
      executionProviders: ['cpu'], intraOpNumThreads: c.threads, interOpNumThreads: 1,
      executionMode: 'sequential', graphOptimizationLevel: 'all'});
    sessions.set(c.key, s);
    return {ok: true, seconds: Number(process.hrtime.bigint() - t0) / 1e9};
  }
  if (c.cmd === 'free') {
    const s = sessions.get(c.key);
    if (s && s.release) await s.release();
    sessions.delete(c.key);
    return {ok: true};
  }
  const s = sessions.get(c.key);
  if (!s) throw new Error(`no session ${c.key}`);
  if (c.cmd === 'run') {
    const {ids, mask} = ids_for(c.batch, c.seq, c.seed || 1);
    const feeds = {input_ids: new ort.Tensor('int64', ids, [c.batch, c.seq]),
                   attention_mask: new ort.Tensor('int64', mask, [c.batch, c.seq])};
    for (let i = 0; i < c.warmup; ++i) await s.run(feeds);
    const ms = [];
    for (let i = 0; i < c.runs; ++i) {
      const t0 = process.hrtime.bigint();
      await s.run(feeds);
      ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    return {ok: true, ms};
  }
  if (c.cmd === 'infer') {
    const feeds = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(c.ids.map(BigInt)), [c.batch, c.seq]),
      attention_mask: new ort.Tensor('int64', BigInt64Array.from(c.mask.map(BigInt)), [c.batch, c.seq])};
    const out = (await s.run(feeds)).last_hidden_state;
    const f = out.data;
    return {ok: true, shape: out.dims,
            data: Buffer.from(f.buffer, f.byteOffset, f.byteLength).toString('base64')};
  }
  throw new Error(`unknown command ${c.cmd}`);
}

const rl = readline.createInterface({input: process.stdin, crlfDelay: Infinity});
let chain = Promise.resolve();
rl.on('line', (line) => {
  if (!line.trim()) return;
  chain = chain.then(async () => {
    let c;
    try {
      c = JSON.parse(line);
      if (c.cmd === 'quit') process.exit(0);
      process.stdout.write(JSON.stringify(await handle(c)) + '\n');
    } catch (e) {
      process.stdout.write(JSON.stringify({ok: false, error: String(e && e.message || e)}) + '\n');
    }
  });
});
rl.on('close', () => chain.then(() => process.exit(0)));
