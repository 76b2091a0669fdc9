// Continuous batching, back-pressure, disconnects, bad requests, the API key
// rule, a bounded load run and shutdown, against `cria serve` on free ports.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cria, miniModel, startServer, stopServer, metrics, rssKiB } from "./helpers.mjs";

const EOS_BIAS = { 3063: -100, 3071: -100 }; // the miniature's end ids: keep it talking
let model;
before(() => {
  model = miniModel();
});

async function post(url, path, body, headers = {}) {
  return fetch(`${url}${path}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

// The text of a streamed completion, read from the raw SSE.
async function streamText(url, prompt, maxTokens) {
  const r = await post(url, "/v1/completions", {
    prompt, temperature: 0, max_tokens: maxTokens, logit_bias: EOS_BIAS, stream: true,
  });
  assert.equal(r.status, 200);
  const raw = await r.text();
  assert.ok(raw.endsWith("data: [DONE]\n\n"));
  let text = "";
  for (const line of raw.split("\n"))
    if (line.startsWith("data: {")) text += JSON.parse(line.slice(6)).choices.map((c) => c.text).join("");
  return text;
}

test("8 simultaneous greedy streams each equal their solo output", async () => {
  const server = await startServer(model, ["--parallel", "8"]);
  try {
    const prompts = [
      "Once upon a time", "The meaning of life is", "Q: What is a fortune?\nA:", "A penny saved",
      "In the beginning", "Never trust a", "You will meet", "Computers are",
    ];
    const solo = [];
    for (const p of prompts) solo.push(await streamText(server.url, p, 60));
    const before = await metrics(server.url);
    const together = await Promise.all(prompts.map((p) => streamText(server.url, p, 60)));
    const after = await metrics(server.url);
    assert.deepEqual(together, solo);
    // They really shared passes: far fewer steps than tokens generated.
    const steps = after.cria_steps_total - before.cria_steps_total;
    const tokens = after.cria_generated_tokens_total - before.cria_generated_tokens_total;
    assert.ok(steps < tokens / 2, `${steps} steps for ${tokens} tokens`);
  } finally {
    assert.equal(await stopServer(server), 0);
  }
});

test("a client that disconnects mid-stream frees its slot", async () => {
  // One thread: the miniature decodes 240 tokens in well under a second on
  // two, and the test needs the stream to outlast the client's hang-up.
  const server = await startServer(model, ["--parallel", "1", "--queue", "0", "--threads", "1"]);
  try {
    const before = await metrics(server.url);
    const ctl = new AbortController();
    const r = await fetch(`${server.url}/v1/completions`, {
      method: "POST",
      body: JSON.stringify({ prompt: "Once", temperature: 0, max_tokens: 240, logit_bias: EOS_BIAS, stream: true }),
      signal: ctl.signal,
    });
    assert.equal(r.status, 200);
    ctl.abort(); // hang up as soon as the stream has started
    // The single slot must come back: a second request gets it (no 429).
    let ok = false;
    for (let i = 0; i < 50 && !ok; ++i) {
      const h = await (await fetch(`${server.url}/health`)).json();
      ok = h.slots_busy === 0;
      if (!ok) await new Promise((res) => setTimeout(res, 20));
    }
    assert.ok(ok, "slot freed");
    const after = await metrics(server.url);
    const generated = after.cria_generated_tokens_total - before.cria_generated_tokens_total;
    assert.ok(generated < 200, `stopped early (${generated} of 240 tokens)`);
    const next = await post(server.url, "/v1/completions", { prompt: "Hello", max_tokens: 4 });
    assert.equal(next.status, 200);
  } finally {
    assert.equal(await stopServer(server), 0);
  }
});

test("past the slots and the queue: 429 with Retry-After, never a hang", async () => {
  const server = await startServer(model, ["--parallel", "1", "--queue", "1"]);
  try {
    const body = { prompt: "Once", temperature: 0, max_tokens: 200, logit_bias: EOS_BIAS };
    const rs = await Promise.all(Array.from({ length: 6 }, () => post(server.url, "/v1/completions", body)));
    const codes = rs.map((r) => r.status).sort();
    assert.ok(codes.filter((c) => c === 200).length >= 2, codes.join(","));
    const refused = rs.filter((r) => r.status === 429);
    assert.ok(refused.length >= 1, codes.join(","));
    assert.equal(refused[0].headers.get("retry-after"), "1");
    assert.equal((await refused[0].json()).error.type, "rate_limit_error");
    for (const r of rs) if (!r.bodyUsed) await r.arrayBuffer();
  } finally {
    assert.equal(await stopServer(server), 0);
  }
});

test("bad requests get a 4xx with an OpenAI-style error and the server keeps serving", async () => {
  const server = await startServer(model, ["--parallel", "2", "--alias", "me/mini", "--max-body-kib", "64"]);
  try {
    const chat = (b) => post(server.url, "/v1/chat/completions", b);
    const user = [{ role: "user", content: "hi" }];
    const cases = [
      [await chat("{not json"), 400, /not valid JSON/],
      [await chat("[1,2]"), 400, /JSON object/],
      [await chat({ messages: "hi" }), 400, /messages/],
      [await chat({ messages: [{ role: "robot", content: "x" }] }), 400, /role 'robot'/],
      [await chat({ messages: user, temperature: "hot" }), 400, /'temperature' must be a number/],
      [await chat({ messages: user, max_tokens: 0 }), 400, /'max_tokens' must be in/],
      [await chat({ messages: user, n: 99 }), 400, /'n' must be in/],
      [await chat({ messages: user, logit_bias: { 999999: 1 } }), 400, /logit_bias key/],
      [await chat({ messages: user, stop: [1] }), 400, /'stop'/],
      [await chat({ model: "gpt-4", messages: user }), 404, /'gpt-4' does not exist/],
      [await post(server.url, "/v1/completions", { prompt: "word ".repeat(400) }), 400, /context holds 256/],
      [await post(server.url, "/v1/completions", { prompt: "x".repeat(70000) }), 413, /exceeds/],
      [await post(server.url, "/v1/nothing", {}), 404, /no route/],
    ];
    for (const [r, status, re] of cases) {
      const body = await r.json();
      assert.equal(r.status, status, JSON.stringify(body));
      assert.match(body.error.message, re);
      assert.equal(typeof body.error.type, "string");
    }
    const ok = await chat({ model: "me/mini", messages: user, max_tokens: 4 });
    assert.equal(ok.status, 200);
  } finally {
    assert.equal(await stopServer(server), 0);
  }
});

test("API key: other hosts need one; it is checked", async () => {
  const refused = spawnSync(cria, ["serve", "-m", model, "--host", "0.0.0.0", "--port", "0"], { encoding: "utf8" });
  assert.equal(refused.status, 1);
  assert.match(refused.stderr, /--api-key/);
  for (const [args, re] of [
    [["--ctx", "512"], /context length 512 exceeds the model's 256/],
    [["--parallel", "0"], /--parallel must be 1\.\.64/],
    [["--port", "70000"], /--port must be/],
  ]) {
    const r = spawnSync(cria, ["serve", "-m", model, ...args], { encoding: "utf8", timeout: 10000 });
    assert.ok(r.status === 1 || r.status === 2, `${args}: status ${r.status} ${r.signal ?? ""}`);
    assert.match(r.stderr, re);
  }
  const missing = spawnSync(cria, ["serve", "-m", "/nonexistent.cria"], { encoding: "utf8" });
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /nonexistent\.cria/);
  const server = await startServer(model, ["--api-key", "s3cret"]);
  try {
    const body = { prompt: "Hi", max_tokens: 2 };
    assert.equal((await post(server.url, "/v1/completions", body)).status, 401);
    assert.equal((await post(server.url, "/v1/completions", body, { Authorization: "Bearer s3cre" })).status, 401);
    assert.equal((await post(server.url, "/v1/completions", body, { Authorization: "Bearer s3cret" })).status, 200);
    assert.equal((await fetch(`${server.url}/health`)).status, 200);
  } finally {
    assert.equal(await stopServer(server), 0);
  }
});

test("a few hundred requests: only 200s and 429s, memory flat afterwards", async () => {
  const server = await startServer(model, ["--parallel", "4", "--queue", "4"]);
  try {
    // Each of n requests is retried after a 429 (a short pause standing in
    // for Retry-After) until it is answered: all n must end with a 200.
    const round = async (n, concurrency) => {
      const codes = {};
      let next = 0;
      const worker = async () => {
        while (next < n) {
          const i = next++;
          const stream = i % 2 === 0;
          for (;;) {
            const r = await post(server.url, i % 3 ? "/v1/completions" : "/v1/chat/completions", {
              prompt: `Fortune ${i}:`, messages: [{ role: "user", content: `Fortune ${i}` }],
              max_tokens: 24, temperature: 0.8, seed: i, stream,
            });
            await r.arrayBuffer();
            codes[r.status] = (codes[r.status] ?? 0) + 1;
            if (r.status !== 429) break;
            await new Promise((res) => setTimeout(res, 25));
          }
        }
      };
      await Promise.all(Array.from({ length: concurrency }, worker));
      return codes;
    };
    await round(60, 12); // warm-up: allocator pools, thread stacks
    const rss0 = rssKiB(server.proc.pid);
    const codes = await round(300, 12);
    const rss1 = rssKiB(server.proc.pid);
    assert.deepEqual(Object.keys(codes).filter((c) => c !== "200" && c !== "429"), [], JSON.stringify(codes));
    assert.equal(codes[200], 300, JSON.stringify(codes));
    assert.ok(codes[429] > 0, "12 clients against 4 slots + 4 queued: some are turned away");
    assert.ok(rss1 - rss0 < 8 * 1024, `RSS grew ${rss1 - rss0} KiB over 300 requests`);
    const m = await metrics(server.url);
    assert.equal(m.cria_slots_busy, 0);
    assert.equal(m.cria_queue_depth, 0);
  } finally {
    assert.equal(await stopServer(server), 0);
  }
});

test("SIGTERM ends open streams and exits 0", async () => {
  const server = await startServer(model, ["--parallel", "1", "--threads", "1"]);
  const r = await post(server.url, "/v1/chat/completions", {
    messages: [{ role: "user", content: "Talk." }], max_tokens: 240, ignore_eos: true, stream: true,
  });
  assert.equal(r.status, 200);
  const exited = stopServer(server); // while the answer is still being written
  // The stream ends with the reason and [DONE] rather than hanging.
  const rest = await r.text();
  assert.match(rest, /shutting down/);
  assert.ok(rest.endsWith("data: [DONE]\n\n"), rest.slice(-200));
  assert.equal(await exited, 0);
});

test("a request past its deadline is cut short", async () => {
  const server = await startServer(model, ["--timeout", "0.002"]);
  try {
    const r = await post(server.url, "/v1/completions", { prompt: "Once", max_tokens: 240, ignore_eos: true });
    const body = await r.json();
    assert.equal(r.status, 200);
    assert.equal(body.choices[0].finish_reason, "length");
    assert.ok(body.usage.completion_tokens < 240, `${body.usage.completion_tokens} tokens`);
  } finally {
    assert.equal(await stopServer(server), 0);
  }
});

test("a conversation's next turn reuses its slot's cached prefix", async () => {
  const server = await startServer(model, ["--parallel", "2"]);
  try {
    const chat = async (messages) => {
      const r = await post(server.url, "/v1/chat/completions", { messages, temperature: 0, max_tokens: 24 });
      assert.equal(r.status, 200);
      return r.json();
    };
    const turn1 = [{ role: "user", content: "Tell me a fortune." }];
    const a = await chat(turn1);
    const m0 = await metrics(server.url);
    const turn2 = [...turn1, a.choices[0].message, { role: "user", content: "Another one, please." }];
    const b = await chat(turn2);
    const m1 = await metrics(server.url);
    const computed = m1.cria_prompt_tokens_total - m0.cria_prompt_tokens_total;
    // At least the first turn's prompt came from the cache.
    assert.ok(computed <= b.usage.prompt_tokens - a.usage.prompt_tokens + 1,
      `${computed} of ${b.usage.prompt_tokens} prompt tokens computed`);
  } finally {
    assert.equal(await stopServer(server), 0);
  }
});
