//! A small tokio driver of the huddle core for turmoil simulations (see issue 5).
