"""Stage 0b — text: normalisation and the text tokenizers the LM reads.

Takes: a string. Gives: token ids.

* ``normalize``: English normalisation (numbers spelled out), sentence splitting, input checks;
* ``tokenizer``: the BPE tokenizer (HF ``tokenizers``, byte fallback) with CosyVoice 2's
  one-to-many CJK masking (paper §2.3: a BPE token spanning several hanzi is split so each
  character is its own token).

Notebook: ``00_data_and_text.ipynb``.
"""
