"""Actor side: runs in the shard, desk and layout-keeper actors: state, dedup, journal,
the desk's parts."""
