"""The sampler: crowd annotations -> selection frequencies, labeling task pages, the paper's sampling
strategies (MatchedFrequency, Threshold, TopImages, KeywordCounts) and near-duplicate removal.
Never imports the evaluator.
"""
