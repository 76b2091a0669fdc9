// The official npm clients (replicate, openai) against `cria serve`, with
// only their base URL changed. Greedy answers are compared with `cria run`,
// which generates through the C API rather than the server's batcher.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import Replicate from "replicate";
import OpenAI from "openai";
import { miniModel, startServer, stopServer, referenceChat } from "./helpers.mjs";

const ALIAS = "meta/meta-llama-3-70b-instruct";
const SYSTEM = "You are a helpful assistant"; // Replicate's Llama 3 default
let model, server, replicate, openai;

before(async () => {
  model = miniModel();
  server = await startServer(model, ["--parallel", "4", "--alias", ALIAS]);
  replicate = new Replicate({ auth: "unused-locally", baseUrl: `${server.url}/v1` });
  openai = new OpenAI({ apiKey: "unused-locally", baseURL: `${server.url}/v1` });
});

after(async () => {
  assert.equal(await stopServer(server), 0, "cria serve exits 0 on SIGTERM");
});

test("the seed's Replicate stream loop runs unchanged", async () => {
  // As in the Llama 3 instructions, but for baseUrl.
  const input = {
    prompt: "Can you write a poem about open source machine learning?",
  };
  let text = "";
  const events = [];
  for await (const event of replicate.stream("meta/meta-llama-3-70b-instruct", { input })) {
    text += event.toString();
    events.push(event.event);
  }
  assert.ok(text.length > 0, "some output");
  assert.equal(events.at(-1), "done");
  assert.ok(events.filter((e) => e === "output").length >= 1);
});

test("replicate.stream greedy output equals cria run's", async () => {
  const prompt = "Tell me a fortune.";
  const input = { prompt, temperature: 0, max_tokens: 48 };
  let text = "";
  for await (const event of replicate.stream(ALIAS, { input })) text += event.toString();
  assert.equal(text, referenceChat(model, prompt, SYSTEM, 48));
});

test("replicate.run returns the output pieces; the prediction reads back", async () => {
  const prompt = "Say something wise.";
  const output = await replicate.run(ALIAS, { input: { prompt, temperature: 0, max_new_tokens: 32 } });
  assert.ok(Array.isArray(output));
  assert.equal(output.join(""), referenceChat(model, prompt, SYSTEM, 32));
  const p = await replicate.predictions.create({
    model: ALIAS,
    input: { prompt, temperature: 0, max_tokens: 32, prompt_template: "{prompt}", stop_sequences: "\n,." },
    wait: true,
  });
  assert.equal(p.status, "succeeded");
  const again = await replicate.predictions.get(p.id);
  assert.deepEqual(again.output, p.output);
  assert.ok(!again.output.join("").includes("\n"), "stop_sequences end the text before a newline");
  assert.equal(typeof again.metrics.output_token_count, "number");
});

test("a prediction by version, then cancelled", async () => {
  const p = await replicate.predictions.create({
    version: "cria",
    input: { prompt: "Go on and on.", max_tokens: 200, min_tokens: 200 },
  });
  assert.ok(["starting", "processing"].includes(p.status));
  assert.match(p.urls.stream, /\/v1\/predictions\/.+\/stream$/);
  const c = await replicate.predictions.cancel(p.id);
  assert.equal(c.status, "canceled");
  assert.ok((c.metrics?.output_token_count ?? 0) < 200);
});

test("an unknown model and bad input are refused with their reason", async () => {
  await assert.rejects(replicate.run("someone/else", { input: { prompt: "hi" } }), /404.*does not exist/s);
  await assert.rejects(replicate.run(ALIAS, { input: { prompt: "hi", temperature: "hot" } }), /422.*temperature/s);
  await assert.rejects(replicate.run(ALIAS, { input: {} }), /422.*prompt/s);
});

test("OpenAI chat completions: JSON and stream agree with cria run", async () => {
  const messages = [{ role: "user", content: "Tell me a fortune." }];
  const ref = referenceChat(model, "Tell me a fortune.", "", 40);
  const r = await openai.chat.completions.create({ model: ALIAS, messages, temperature: 0, max_tokens: 40 });
  assert.equal(r.choices[0].message.content, ref);
  assert.ok(["stop", "length"].includes(r.choices[0].finish_reason));
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  const stream = await openai.chat.completions.create({
    model: ALIAS, messages, temperature: 0, max_tokens: 40, stream: true, stream_options: { include_usage: true },
  });
  let text = "", usage = null, finish = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.delta?.content ?? "";
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.equal(text, ref);
  assert.equal(finish, r.choices[0].finish_reason);
  assert.deepEqual(usage, r.usage);
});

test("OpenAI completions, max_tokens -> length, n choices, stop, models", async () => {
  const r = await openai.completions.create({ model: ALIAS, prompt: "Once upon a time", temperature: 0, max_tokens: 3 });
  assert.equal(r.choices[0].finish_reason, "length");
  assert.equal(r.usage.completion_tokens, 3);
  const n = await openai.completions.create({
    model: ALIAS, prompt: "Once upon a time", temperature: 1, seed: 7, max_tokens: 8, n: 3,
  });
  assert.equal(n.choices.length, 3);
  assert.deepEqual(n.choices.map((c) => c.index), [0, 1, 2]);
  const full = await openai.completions.create({ model: ALIAS, prompt: "Once upon a time", temperature: 0, max_tokens: 40 });
  const word = full.choices[0].text.trim().split(/\s+/)[1];
  const cut = await openai.completions.create({
    model: ALIAS, prompt: "Once upon a time", temperature: 0, max_tokens: 40, stop: [word],
  });
  assert.equal(cut.choices[0].finish_reason, "stop");
  assert.equal(cut.choices[0].text, full.choices[0].text.slice(0, full.choices[0].text.indexOf(word)));
  const models = await openai.models.list();
  assert.deepEqual(models.data.map((m) => m.id), [ALIAS]);
});

test("OpenAI client errors carry the server's message", async () => {
  await assert.rejects(
    openai.chat.completions.create({ model: ALIAS, messages: [{ role: "user", content: "hi" }], temperature: 9 }),
    (e) => e.status === 400 && /temperature/.test(e.message) && e.type === "invalid_request_error",
  );
  await assert.rejects(
    openai.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }] }),
    (e) => e.status === 404 && /gpt-4o/.test(e.message),
  );
});
