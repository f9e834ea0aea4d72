"""Windows too common across answers to score a single answer by (generated data, do not edit).

Under one key, a window shared by many answers ("Sure," at the start, "organize" anywhere) gives all
of them the same green or red unit, so single-answer p-values under that key would be correlated
across a corpus and their distribution would not be uniform. Windows present in >= 1% of the tuning
half of ShareGPT assistant turns (counted on all of them) are left out of
single-answer scoring; the watermark still writes them, and a corpus audit that merges answers
(detect.merge, each window once) may keep them.

Regenerate after changing the lexicon: python bench/watermark_quality.py --build-stopwindows
"""

STOP_WINDOWS: frozenset[str] = frozenset(
    {
        "adjective:correct|^ ^",
        "adjective:several|there are",
        "connective:sure|^ ^",
        "contraction:here is|^ ^",
        "contraction:you are|^ ^",
        "hyphen:high-quality|",
        "hyphen:real-time|",
        "markdown:ordered|^ ^",
        "markdown:ordered|these steps",
        "phrase:I apologize|^ ^",
        "phrase:any other questions|you have",
        "phrase:here are some|^ ^",
        "phrase:you can|^ ^",
        "phrase:you can|of how",
        "spelling:behavior|",
        "spelling:customize|",
        "spelling:emphasize|",
        "spelling:optimize|",
        "spelling:organize|",
        "spelling:personalize|",
        "spelling:prioritize|",
        "spelling:realize|",
        "spelling:recognize|",
        "spelling:specialize|",
        "spelling:toward|",
        "spelling:visualize|",
    }
)
