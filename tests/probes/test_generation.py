"""probes/generation.py: the prompt is what precedes the answer; batched generation = one prompt at a time."""

from __future__ import annotations

from rise_exp.data.records import Record
from rise_exp.probes.generation import generate, prompt_text


def test_prompt_text_is_what_precedes_the_answer():
    assert prompt_text(Record(id="a", instruction="Say hi.", output="hi")) == "Say hi.\n"
    assert prompt_text(Record(id="b", instruction="Add", input="1 2", output="3")) == "Add\n1 2\n"
    assert prompt_text(Record(id="c", text="plain text")) == "plain text"


def test_batched_left_padded_generation_equals_one_prompt_at_a_time(tiny_neox, tiny_tokenizer, sentences):
    model = tiny_neox()
    prompts = [sentences[0][:10], sentences[1], sentences[2][:25]]
    batched = generate(model, tiny_tokenizer, prompts, max_new_tokens=6, batch_size=3)
    alone = [generate(model, tiny_tokenizer, [p], max_new_tokens=6)[0] for p in prompts]
    assert batched == alone and all(batched)
    assert tiny_tokenizer.padding_side == "right"  # restored
