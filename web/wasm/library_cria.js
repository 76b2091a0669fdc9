// Imports of cria_web.cc, linked with --js-library. Both call hooks that
// web/src/worker.js installs on the Module object before the module starts.
mergeInto(LibraryManager.library, {
  // A piece of generated text (whole UTF-8 characters). Non-zero stops.
  crw_host_piece: function(seq, ptr, len, token) {
    return Module['criaPiece'](seq, ptr >>> 0, len >>> 0, token) | 0;
  },
  // Called after every token; non-zero stops. The worker swaps this import
  // for a JSPI-suspending one in the single-threaded build so that a cancel
  // message can arrive while cria_generate runs.
  crw_host_yield: function() {
    return Module['criaYield']() | 0;
  },
  // A model split across workers (worker.js, "the chain"): each carries one
  // message through the later instances and returns 0 or a malloc'd error.
  crw_host_open: function(sid, nSeq, nCtx, kv, maxTokens) {
    return Module['criaHost']['open'](sid, nSeq, nCtx, kv >>> 0, maxTokens) >>> 0;
  },
  crw_host_forward: function(sid, batch, n, hidden, hiddenSize, logits, nLogits, vocab) {
    return Module['criaHost']['forward'](sid, batch >>> 0, n, hidden >>> 0, hiddenSize, logits >>> 0, nLogits, vocab) >>> 0;
  },
  crw_host_copy: function(sid, src, dst, nPos) {
    return Module['criaHost']['copy'](sid, src, dst, nPos) >>> 0;
  },
  crw_host_close: function(sid) {
    Module['criaHost']['close'](sid);
  },
});
