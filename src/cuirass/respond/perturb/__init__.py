"""Answer-preserving perturbations of worked solutions, one module per content type.

`base` holds the interface and the keyed randomness, `answer` finds the final answer that must survive,
`detect` picks the content type, and `math`, `code`, `prose` hold the variants.
"""
