"""The test-set catalog and the imagenet-testbed metadata it ships (parsed as data, never executed)."""

from __future__ import annotations

import json

import pytest

from generalization import test_sets
from generalization.files import DataError
from generalization.model_types import timm_model_type
from generalization.testbed_metadata import build_bundle, bundle, parse_model_types


def test_shipped_metadata_equals_the_testbed_files(shared_data):
    meta = shared_data / "imagenet-testbed-metadata"
    fresh = build_bundle(meta)
    assert fresh == bundle()
    a = fresh["class_sublists"]["imagenet-a"]
    assert len(a) == 200 and a[:3] == [6, 11, 13] and a[-1] == 988
    assert len(fresh["class_sublists"]["imagenet-r"]) == 200
    assert len(fresh["objectnet"]["objectnet_to_imagenet"]) == 113
    assert len(fresh["class_sublists"]["objectnet"]) == 125
    # model types: the dict literal plus the three `for i in range(N)` loops (100 + 50 + 10 entries)
    types = fresh["model_types"]
    assert types["resnet50"] == "STANDARD" and types["BiT-M-R50x1-ILSVRC2012"] == "MORE_DATA"
    assert types["resnet18_50k_99_epochs"] == types["resnet101_9_epochs"] == "LOW_ACCURACY_CNN"
    assert sum(k.startswith("resnet18_100k_") and k.endswith("_epochs") for k in types) == 50


def test_model_types_are_parsed_not_executed(tmp_path):
    evil = tmp_path / "model_types.py"
    evil.write_text("import os\nmodel_types_map = {'a': ModelTypes.STANDARD}\nos.system('touch pwned')\n"
                    "for i in range(2):\n    model_types_map[f'b{i}'] = ModelTypes.MORE_DATA\n")  # fmt: skip
    assert parse_model_types(evil) == {"a": "STANDARD", "b0": "MORE_DATA", "b1": "MORE_DATA"}
    assert not (tmp_path / "pwned").exists()
    bad = tmp_path / "bad.py"
    bad.write_text("model_types_map = {'a': ModelTypes.STANDARD}\nfor i in os.listdir('.'):\n    pass\n")
    with pytest.raises(DataError, match="unsupported loop"):
        parse_model_types(bad)


def test_catalog_kinds_originals_and_subsets():
    cat = test_sets.CATALOG
    assert set(test_sets.TEST_SETS) <= set(cat)  # the paper's sets keep their entries
    for t in cat.values():
        assert t.kind in test_sets.KINDS
        assert (t.original is None) == (t.kind == "original")
        assert t.original is None or t.original in cat
    a = cat["imagenet-a"]
    assert (a.original, a.num_images, a.kind, a.classes) == ("val-on-imagenet-a-classes", 7500, "natural", "imagenet-a")
    assert cat["objectnet-1.0-beta"].original == "val-on-objectnet-classes"
    assert cat["imagenet-c.fog.3_on-disk"].kind == "synthetic" and cat["pgd.linf.eps2"].kind == "adversarial"
    assert test_sets.get_info("imagenet-r").title == "ImageNet-R"
    assert test_sets.original_of("imagenet-sketch") == "imagenet-val"
    assert len(test_sets.class_subset("imagenet-a")) == 200 and test_sets.class_subset("imagenet-val") is None
    assert sum(t.family == "imagenet-c" for t in cat.values()) == 19 * 10 - 5  # glass blur: on disk only


def test_timm_model_types():
    meta = {"adv_inception_v3": "in1k-adv", "resnet50": "in1k", "deit_base_distilled_patch16_224": "in1k-dist"}
    assert timm_model_type("vit_base_patch16_224.augreg_in21k_ft_in1k@224") == ("more_data", "augreg_in21k_ft_in1k")
    assert timm_model_type("resnet50.a1_in1k@288")[0] == "standard"
    assert timm_model_type("efficientnet_b0.ap_in1k")[0] == "robustness_intervention"
    assert timm_model_type("adv_inception_v3@299", meta) == ("robustness_intervention", "in1k-adv")
    assert timm_model_type("deit_base_distilled_patch16_224@224", meta)[0] == "other"
    assert timm_model_type("unknown_arch@224", meta) == ("", "")
    assert json.dumps(meta)  # plain data


def test_source_names_are_the_published_names(shared_data):
    """Each source's file/column names map to the test sets they are (the release's dataset files, every
    column of imagenet-testbed's table, timm's result tables: read from the shipped samples)."""
    assert test_sets.source_map("imagenetv2-release") == {
        "imagenet-validation-original": "imagenet-val", "imagenetv2-b-33": "imagenetv2-matched-frequency",
        "imagenetv2-a-44": "imagenetv2-threshold0.7", "imagenetv2-c-12": "imagenetv2-top-images"}  # fmt: skip
    release = sorted(p.stem for p in (shared_data / "ImageNetV2" / "data" / "datasets").glob("*.json"))
    assert sorted(test_sets.source_map("imagenetv2-release")) == release
    published = shared_data / "published-results-samples"
    columns = (published / "robustness_top1s.csv").read_text().splitlines()[0].split(",")[1:]
    testbed = test_sets.source_map("testbed")
    assert sorted(testbed) == sorted(columns) and len(columns) == 213
    assert testbed["val"] == "imagenet-val" and testbed["imagenetv2-topimages"] == "imagenetv2-top-images-as-released"
    assert testbed["imagenetv2-threshold-0.7-format-val"] == "imagenetv2-threshold0.7"
    tables = sorted(p.name.removeprefix("results-").removesuffix(".csv") for p in published.glob("results-*.csv"))
    timm = test_sets.source_map("timm")
    assert sorted(timm) == tables
    assert (timm["sketch"], timm["imagenet-a-clean"]) == ("imagenet-sketch", "val-on-imagenet-a-classes")
    assert test_sets.CATALOG["imagenet-real"].name_in("testbed") is None  # ReaL comes from timm only
    with pytest.raises(ValueError, match="unknown source"):
        test_sets.source_map("nosuch")


def test_catalog_check_refuses_a_bad_entry():
    cat = dict(test_sets.CATALOG)
    test_sets._check_catalog(cat)
    dup = test_sets.TestSetInfo("twin", 1000, 10, "imagenet-val", "Twin", "natural", label_space="imagenet-1k",
                                source_names=(("testbed", "val"),))
    with pytest.raises(ValueError, match=r"'twin'.*testbed name 'val', already 'imagenet-val'"):
        test_sets._check_catalog({**cat, "twin": dup})
    bad = test_sets.TestSetInfo("odd", 7, 10, None, "Odd", label_space="mnist")
    with pytest.raises(ValueError, match="label space 'mnist'"):
        test_sets._check_catalog({**cat, "odd": bad})


def test_declarations_are_scoped_and_resettable():
    assert test_sets.declared() == {}  # conftest scopes every test: nothing leaks in from another test
    with test_sets.declarations() as before:
        assert before == {}
        test_sets.declare("mine-new", original="imagenet-val", num_classes=1000, num_images=5)
        assert test_sets.pairs(["imagenet-val", "mine-new"]) == [("imagenet-val", "mine-new")]
    assert test_sets.get_info("mine-new") is None and test_sets.declared() == {}
    test_sets.declare("mine-b", original=None, num_classes=10, num_images=3)
    test_sets.declare("mine-a", original="mine-b", num_classes=10, num_images=3)
    assert list(test_sets.declared()) == ["mine-a", "mine-b"]  # sorted, whatever the declaration order
    test_sets.reset_declared()
    assert test_sets.declared() == {} and test_sets.get_info("imagenet-val") is not None
