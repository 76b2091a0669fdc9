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
});
