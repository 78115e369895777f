//! tikv end to end (scenarios come with its controller).
