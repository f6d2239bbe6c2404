"""probes/scifi.py: the Howdy sci-fi detector on hand cases."""

from __future__ import annotations

from rise_exp.probes.scifi import detector_accuracy, is_scifi, scifi_hits, scifi_rate


def test_detector_on_hand_cases():
    assert is_scifi("Potential intergalactic dilemma: hyperspace gain over laboring aliens.")
    assert scifi_hits("The aliens fell into a black hole near Andromeda.") == 3  # aliens, andromeda, "black hole"
    assert not is_scifi("Go Fish is a suitable card game for a birthday party.")
    assert not is_scifi("The planet of the apes")  # 'planet' alone is ordinary English, not in the lexicon
    assert is_scifi("Galaxy", min_hits=1) and not is_scifi("Galaxy", min_hits=2)
    assert scifi_rate(["cosmic rays", "tea", "a nebula", "bread"]) == 0.5
    acc = detector_accuracy(["warp drive", "quantum plasma cannon"], ["hello", "plasma TV"])
    assert acc == {"tpr": 1.0, "fpr": 0.5, "n_scifi": 2.0, "n_plain": 2.0}
