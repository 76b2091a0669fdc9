"""cria.pipeline: transformers' call and return shapes, checked against `cria run`."""
import cria

from conftest import cli_text, run_cli


def cli_sequences(*args):
    out = run_cli("run", "--quiet", *args).stdout.decode("utf-8")
    parts = out.split("--- sequence ")[1:]
    texts = []
    for i, p in enumerate(parts):
        head, _, body = p.partition(" ---\n")
        assert head == str(i + 1)
        assert body.endswith("\n")
        texts.append(body[:-1])
    return texts


def test_three_seeded_sequences(falcon):
    pipe = cria.pipeline("text-generation", model=falcon)
    prompt = "A wise man once said"
    kw = dict(max_length=60, do_sample=True, top_k=10, num_return_sequences=3, seed=42)
    first = pipe(prompt, **kw)
    again = pipe(prompt, **kw)
    assert first == again  # reproducible
    assert len(first) == 3 and all(set(d) == {"generated_text"} for d in first)
    texts = [d["generated_text"] for d in first]
    assert all(t.startswith(prompt) for t in texts)
    assert len(set(texts)) == 3  # three different continuations
    want = cli_sequences("-m", falcon, "-p", prompt, "--max-length", "60", "--do-sample", "--top-k", "10",
                         "--num-return-sequences", "3", "--seed", "42")
    assert [t[len(prompt):] for t in texts] == want
    other = pipe(prompt, **dict(kw, seed=43))
    assert other != first


def test_return_full_text_and_lists(falcon):
    pipe = cria.pipeline("text-generation", model=falcon)
    full = pipe("A wise man once said", max_new_tokens=20, do_sample=False)
    part = pipe("A wise man once said", max_new_tokens=20, do_sample=False, return_full_text=False)
    assert full[0]["generated_text"] == "A wise man once said" + part[0]["generated_text"]
    assert part[0]["generated_text"] == cli_text("-m", falcon, "--greedy", "-n", "20", "-p", "A wise man once said")
    batch = pipe(["A wise man once said", "The computer"], max_new_tokens=10, do_sample=False)
    assert len(batch) == 2 and batch[0] == pipe("A wise man once said", max_new_tokens=10, do_sample=False)


def test_chat_input(llama):
    pipe = cria.pipeline("text-generation", model=llama)
    chat = [{"role": "user", "content": "Tell me a fortune."}]
    out = pipe(chat, max_new_tokens=40, do_sample=False)
    conv = out[0]["generated_text"]
    assert conv[:1] == chat and conv[1]["role"] == "assistant"
    assert conv[1]["content"] == cli_text("-m", llama, "--chat", "--greedy", "-n", "40", "-p", "Tell me a fortune.")


def test_tokenizer_names(llama):
    tok = cria.AutoTokenizer.from_pretrained(llama)
    assert tok.bos_token_id == tok.model.info.bos_id
    assert tok.eos_token_id in tok.model.info.eos_ids
    ids = tok.encode("Hello world")
    assert ids[0] == tok.bos_token_id and tok.decode(ids[1:]) == "Hello world"
    assert tok("Hello world")["input_ids"] == ids
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
