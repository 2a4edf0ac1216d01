"""The stages of a pipeline, each one module: data → encoders/embedding → reduction → clustering,
scored by the label-free objective; ``pipeline`` joins a fitted reducer and clusterer."""
