//! huddle on smol and async-io (see issue 4).
