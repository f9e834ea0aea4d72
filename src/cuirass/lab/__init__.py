"""The lab: synthetic-but-grounded traffic, and measurements of how well Cuirass detects, answers and proves.

- traffic/: the seeded traffic generator (benign people and products, attack campaigns);
- detect_eval: `cuirass lab detect`, the detection evaluation against ground truth and a peer.
"""
