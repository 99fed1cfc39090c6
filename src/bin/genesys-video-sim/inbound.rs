//! The read side of a stream connection: a thread that reads client frames
//! and passes them to the connection's writer.
//!
//! tungstenite replies to pings and close frames by itself, but the simulator
//! must delay pongs and go silent on purpose. So the `WebSocket` reads through
//! [`ReadSide`], which discards everything tungstenite writes after the
//! handshake. The writer thread writes every outgoing frame itself.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::thread::{self, JoinHandle};

use crossbeam_channel::Sender;
use log::debug;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Bytes, Error, Message, WebSocket};

/// A client frame or the end of the connection, as the writer needs it.
#[derive(Debug)]
pub enum Inbound {
    Text(String),
    Ping(Bytes),
    Pong(Bytes),
    Close(Option<CloseFrame>),
    /// The connection ended, with the reason for the log.
    Ended(String),
}

/// A TCP stream whose writes pass through during the handshake and are discarded after it.
pub struct ReadSide {
    tcp: TcpStream,
    discard_writes: bool,
}

impl ReadSide {
    pub fn new(tcp: TcpStream) -> Self {
        Self {
            tcp,
            discard_writes: false,
        }
    }

    /// Stops passing writes to the socket, once the handshake is done.
    pub fn discard_writes(&mut self) {
        self.discard_writes = true;
    }
}

impl Read for ReadSide {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        self.tcp.read(buffer)
    }
}

impl Write for ReadSide {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        if self.discard_writes {
            Ok(buffer.len())
        } else {
            self.tcp.write(buffer)
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.discard_writes {
            Ok(())
        } else {
            self.tcp.flush()
        }
    }
}

/// Starts the reader thread. It ends when the socket closes or the writer is gone.
pub fn spawn(
    name: String,
    socket: WebSocket<ReadSide>,
    inbound: Sender<Inbound>,
) -> io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name(name)
        .spawn(move || read_frames(socket, &inbound))
}

fn read_frames(mut socket: WebSocket<ReadSide>, inbound: &Sender<Inbound>) {
    loop {
        let item = match socket.read() {
            Ok(Message::Text(text)) => Inbound::Text(text.as_str().to_string()),
            Ok(Message::Ping(payload)) => Inbound::Ping(payload),
            Ok(Message::Close(frame)) => Inbound::Close(frame),
            Ok(Message::Binary(payload)) => {
                debug!("ignoring a binary frame of {} bytes", payload.len());
                continue;
            }
            Ok(Message::Pong(payload)) => Inbound::Pong(payload),
            Ok(Message::Frame(_)) => continue,
            Err(Error::ConnectionClosed | Error::AlreadyClosed) => {
                Inbound::Ended("closed".to_string())
            }
            Err(error) => Inbound::Ended(error.to_string()),
        };
        let ended = matches!(item, Inbound::Ended(_));
        if inbound.send(item).is_err() || ended {
            return;
        }
    }
}
