//! Listening sockets: `SO_REUSEADDR`, a deep backlog, non-blocking.

use socket2::{Domain, Socket, Type};
use std::io;
use std::net::SocketAddr;
use std::net::TcpListener;

/// Accept backlog.
const BACKLOG: i32 = 1024;

/// Binds `addr` (non-blocking) with `SO_REUSEADDR` so a restarted proxy
/// can rebind at once.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(BACKLOG)?;
    Ok(s.into())
}
