"""The two Python snippets this project started from, with `replicate` /
`transformers` replaced by `cria` and the model names by paths. Each is
checked against `cria run` with the same settings."""
import cria

from conftest import cli_text

PROMPT = "Can you write a poem about open source machine learning?"


REPLICATE_DEFAULTS = ["--chat", "--system", "You are a helpful assistant", "-n", "512", "--temperature", "0.6",
                      "--top-p", "0.9", "--top-k", "50"]


def test_replicate_stream_loop(llama, capsys):
    # The seed, word for word but for the module and the model.
    for event in cria.stream(
        llama,
        input={
            "prompt": "Can you write a poem about open source machine learning?"
        },
    ):
        print(str(event), end="")
    out = capsys.readouterr().out
    assert out
    # Replicate's defaults (system prompt, 512 tokens, temperature 0.6, top_p
    # 0.9, top_k 50, a random seed): with the seed fixed, exactly `cria run`
    # with those settings.
    got = "".join(str(e) for e in cria.stream(llama, input={"prompt": PROMPT, "seed": 5}))
    assert got == cli_text("-m", llama, *REPLICATE_DEFAULTS, "--seed", "5", "-p", PROMPT)


def test_replicate_events_shape(llama):
    events = list(cria.stream(llama, input={"prompt": "Hi", "max_tokens": 8, "temperature": 0}))
    assert events[-1].event is cria.ServerSentEvent.EventType.DONE and str(events[-1]) == ""
    assert all(e.event is cria.ServerSentEvent.EventType.OUTPUT for e in events[:-1])
    assert "".join(str(e) for e in events) == cli_text("-m", llama, "--chat", "--system", "You are a helpful assistant",
                                                       "--greedy", "-n", "8", "-p", "Hi")


def test_replicate_inputs(llama):
    inp = {"prompt": "Tell me a fortune.", "system_prompt": "Be brief.", "max_new_tokens": 40, "top_k": 5,
           "top_p": 0.8, "temperature": 0.9, "seed": 7, "stop_sequences": "\t,--"}
    got = "".join(str(e) for e in cria.stream(llama, input=inp))
    want = cli_text("-m", llama, "--chat", "--system", "Be brief.", "-p", "Tell me a fortune.", "-n", "40",
                    "--top-k", "5", "--top-p", "0.8", "--temperature", "0.9", "--seed", "7", "--stop", "\t",
                    "--stop", "--")
    assert got == want


def test_replicate_prompt_template(llama):
    template = ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n{system_prompt}<|eot_id|>"
                "<|start_header_id|>user<|end_header_id|>\n\n{prompt}<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n")
    inp = {"prompt": "Tell me a fortune.", "system_prompt": "Be brief.", "prompt_template": template,
           "temperature": 0, "max_tokens": 30}
    got = "".join(str(e) for e in cria.stream(llama, input=inp))
    # The template is the Llama 3 format itself, so the result must equal the
    # model's own chat template with the same system message.
    assert got == cli_text("-m", llama, "--chat", "--system", "Be brief.", "-p", "Tell me a fortune.", "--greedy",
                           "-n", "30")


def test_transformers_pipeline_call(falcon):
    model = falcon

    tokenizer = cria.AutoTokenizer.from_pretrained(model)
    pipeline = cria.pipeline(
        "text-generation",
        model=model,
        tokenizer=tokenizer,
        device_map="auto",
    )
    sequences = pipeline(
        "Can you explain the concepts of Quantum Computing?",
        max_length=200,
        do_sample=True,
        top_k=10,
        num_return_sequences=1,
        eos_token_id=tokenizer.eos_token_id,
    )
    for seq in sequences:
        print(f"Result: {seq['generated_text']}")

    prompt = "Can you explain the concepts of Quantum Computing?"
    assert len(sequences) == 1
    text = sequences[0]["generated_text"]
    assert text.startswith(prompt)  # return_full_text defaults to True, as in transformers
    want = cli_text("-m", model, "-p", prompt, "--max-length", "200", "--do-sample", "--top-k", "10",
                    "--eos-id", str(tokenizer.eos_token_id))
    assert text[len(prompt):] == want
