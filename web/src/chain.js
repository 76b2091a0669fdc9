// The chain between the instances of a model split across workers, for
// worker.js (see the comment at its top): worker 0's pipeline host (the
// imports crw_host_* of library_cria.js) and a later worker's handling of
// the messages that reach it. A classic script in browsers (importScripts:
// the global criaChain) and CommonJS in Node.
'use strict';

(function (root) {
  // ctx: {isNode, module(), model(), heap(), cstring, allocString,
  // lastError, encoder, decoder}.
  function criaChain(ctx) {
    const { isNode, heap, cstring, allocString, lastError, encoder, decoder } = ctx;
    let chain = null; // {ctl: Int32Array, data: SharedArrayBuffer, next, prev, index, count, stages, threads, who}
    const stages = new Map(); // sid -> cria_stage (later instances)
    const testFault = isNode ? Number(process.env.CRIA_WEB_TEST_FAULT || 0) : 0;
    let forwards = 0;

    // Worker 0's side of the chain: the imports crw_host_* (library_cria.js).
    // Each sends one message to worker 1 and blocks until the last worker
    // answers (or the page says a worker died); the answer is 0 or a malloc'd
    // error text for the C side.
    function chainCall(m, transfer) {
      const ctl = chain.ctl;
      Atomics.store(ctl, 0, 0);
      chain.next.postMessage(m, transfer || []);
      while (Atomics.load(ctl, 0) === 0) Atomics.wait(ctl, 0, 0, 1000);
      const status = Atomics.load(ctl, 1);
      if (status === 0) return 0;
      if (status === 2) {
        const s = chain.stages[Atomics.load(ctl, 3)] || { layers: [0, 0] };
        const who = `instance ${Atomics.load(ctl, 3) + 1} of ${chain.count} (layers ${s.layers[0]}-${s.layers[1] - 1})`;
        return allocString(`${who} stopped: its worker died (out of memory?)`);
      }
      if (status === 1 && !chain.data) return allocString('a later instance failed');
      const n = Atomics.load(ctl, 2);
      return allocString(decoder.decode(new Uint8Array(chain.data, 0, n).slice()));
    }

    // The answer buffer: logits rows (or an error text), grown as needed and
    // handed down the chain with the message that first needs it.
    function answerBuffer(bytes) {
      const want = Math.max(bytes, 64 * 1024);
      if (chain.data && chain.data.byteLength >= want) return null;
      chain.data = new SharedArrayBuffer(want);
      return chain.data;
    }

    const chainHost = {
      open(sid, nSeq, nCtx, kvPtr, maxTokens) {
        const data = answerBuffer(0);
        return chainCall({ op: 'open', sid, nSeq, nCtx, kv: cstring(kvPtr), maxTokens, data });
      },
      forward(sid, batchPtr, n, hiddenPtr, hiddenSize, logitsPtr, nLogits, vocab) {
        const batch = heap().slice(batchPtr, batchPtr + n * 16).buffer;
        const hidden = heap().slice(hiddenPtr, hiddenPtr + n * hiddenSize * 4).buffer;
        const bytes = nLogits * vocab * 4;
        const data = answerBuffer(bytes);
        const err = chainCall({ op: 'forward', sid, n, batch, hidden, nLogits, vocab, data }, [batch, hidden]);
        if (!err && bytes) heap().set(new Uint8Array(chain.data, 0, bytes), logitsPtr);
        return err;
      },
      copy(sid, src, dst, nPos) {
        return chainCall({ op: 'copy', sid, src, dst, nPos });
      },
      close(sid) {
        if (chain) chain.next.postMessage({ op: 'close', sid });
      },
    };

    // A later worker: one message from the previous instance.
    function onChain(m) {
      if (m.data) chain.data = m.data;
      const last = chain.index === chain.count - 1;
      const answer = (err) => {
        const ctl = chain.ctl;
        if (err && chain.data) {
          const bytes = encoder.encode(`${chain.who}: ${err}`).subarray(0, chain.data.byteLength);
          new Uint8Array(chain.data).set(bytes);
          Atomics.store(ctl, 2, bytes.length);
        }
        Atomics.store(ctl, 1, err ? 1 : 0);
        Atomics.store(ctl, 0, 1);
        Atomics.notify(ctl, 0);
      };
      try {
        if (m.op === 'close') {
          const st = stages.get(m.sid);
          if (st) ctx.module()._crw_stage_free(st);
          stages.delete(m.sid);
          if (!last) chain.next.postMessage(m);
          return;
        }
        if (m.op === 'open') {
          const kvPtr = allocString(m.kv);
          const st = ctx.module()._crw_stage_create(ctx.model(), chain.threads, m.nSeq, m.nCtx, kvPtr, m.maxTokens) >>> 0;
          ctx.module()._free(kvPtr);
          if (!st) return answer(lastError());
          stages.set(m.sid, st);
          return last ? answer(null) : chain.next.postMessage(m);
        }
        const st = stages.get(m.sid);
        if (!st) return answer(`no session ${m.sid}`);
        if (m.op === 'copy') {
          if (!ctx.module()._crw_stage_copy_rows(st, m.src, m.dst, m.nPos)) return answer(lastError());
          return last ? answer(null) : chain.next.postMessage(m);
        }
        // Test hook (web/test/node.test.mjs): CRIA_WEB_TEST_FAULT=K ends a
        // later instance's worker on its K-th forward call, as running out of
        // memory would.
        if (testFault && ++forwards >= testFault) process.exit(1);
        // forward: the hidden state in, this instance's layers, then the next
        // instance's input or (last) the logits rows.
        const outBytes = last ? m.nLogits * m.vocab * 4 : m.hidden.byteLength;
        const b = ctx.module()._malloc(m.batch.byteLength) >>> 0;
        const h = ctx.module()._malloc(m.hidden.byteLength) >>> 0;
        const o = ctx.module()._malloc(Math.max(4, outBytes)) >>> 0;
        try {
          if (!b || !h || !o) return answer('out of wasm memory');
          heap().set(new Uint8Array(m.batch), b);
          heap().set(new Uint8Array(m.hidden), h);
          if (!ctx.module()._crw_stage_forward(st, b, m.n, h, o)) return answer(lastError());
          if (last) {
            new Uint8Array(chain.data).set(heap().subarray(o, o + outBytes));
            return answer(null);
          }
          const hidden = heap().slice(o, o + outBytes).buffer;
          chain.next.postMessage({ ...m, hidden }, [hidden]);
        } finally {
          ctx.module()._free(b);
          ctx.module()._free(h);
          ctx.module()._free(o);
        }
      } catch (e) {
        answer(e && e.message ? e.message : String(e));
      }
    }

    return {
      host: chainHost,
      // Worker 0: its port to worker 1 and the plan's stages (for messages).
      first(c, count, planStages) {
        chain = { ...c, index: 0, count, stages: planStages, data: null, ctl: new Int32Array(c.ctl) };
      },
      // A later worker: messages from the previous instance on c.prev.
      serve(c, index, count, threads, who) {
        chain = { ...c, index, count, threads, who, ctl: new Int32Array(c.ctl), data: null };
        if (isNode) chain.prev.on('message', (d) => onChain(d));
        else chain.prev.onmessage = (e) => onChain(e.data);
      },
      freeStages() {
        for (const st of stages.values()) ctx.module()._crw_stage_free(st);
        stages.clear();
      },
    };
  }

  if (typeof module === 'object' && module.exports) module.exports = criaChain;
  else root.criaChain = criaChain;
})(this);
