"""Chat platforms: each module turns platform events into `Incoming` requests; none imports TensorFlow."""
