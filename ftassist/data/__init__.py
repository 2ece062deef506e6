"""The Data station: file -> records -> canonical chat -> DataReport -> clean split."""
