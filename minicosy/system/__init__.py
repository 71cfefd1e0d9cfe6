"""The system layer: the stages composed into CosyVoice 2 (notebooks 06 and 07).

Above every stage (a stage never imports it); the official ``cosyvoice/cli/{frontend,model}.py``
split, without its global state:

    frontend.py   what a request brings: text policy, VoiceReference, a voice prompt processed once,
                  SFT speaker vectors (from speaker.json), the LM-context rule
    model.py      MiniCosy: from_pretrained, synthesize, stream, tokens_to_audio
    timing.py     Timing: what one request cost, stage by stage
    evaluate.py   `minicosy eval tts`: the four scenarios judged
    demo.py       `minicosy demo` (`make demo`)
    recipe.py     `minicosy train all`: every stage in order, resumable
    cli.py        the `minicosy` command (`synth`, `stream`, and every module's commands)
"""
