// A minimal SMTP sink for the benchmark: greets at once, accepts every message and discards it, counting.
// (The smtp-server package greets only after a 100 ms delay, which would measure the sink, not Tessera.)
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface SmtpSink {
  port: number;
  /** Messages accepted (DATA completed) since start. */
  readonly messages: number;
  close(): Promise<void>;
}

const TERMINATOR = '\r\n.\r\n';

function serve(socket: Socket, onMessage: () => void): void {
  socket.setNoDelay(true);
  socket.setEncoding('latin1');
  let buf = '';
  let inData = false;
  const reply = (line: string) => socket.write(`${line}\r\n`);
  reply('220 bench-sink ESMTP');
  socket.on('data', (chunk: string) => {
    buf += chunk;
    for (;;) {
      if (inData) {
        // The message ends at CRLF.CRLF (or a lone ".\r\n" as the first line of an empty body).
        const end = buf.startsWith('.\r\n') ? 0 : buf.indexOf(TERMINATOR);
        if (end < 0) {
          // keep only a tail long enough to hold a split terminator
          if (buf.length > TERMINATOR.length) buf = buf.slice(-TERMINATOR.length);
          return;
        }
        buf = buf.slice(end === 0 ? 3 : end + TERMINATOR.length);
        inData = false;
        onMessage();
        reply('250 2.0.0 OK discarded');
        continue;
      }
      const nl = buf.indexOf('\r\n');
      if (nl < 0) {
        if (buf.length > 4096) socket.destroy(); // not SMTP
        return;
      }
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 2);
      const verb = line.slice(0, 4).toUpperCase();
      switch (verb) {
        case 'EHLO':
          reply('250-bench-sink');
          reply('250-PIPELINING');
          reply('250-8BITMIME');
          reply('250 SMTPUTF8');
          break;
        case 'HELO':
          reply('250 bench-sink');
          break;
        case 'MAIL':
        case 'RCPT':
        case 'RSET':
        case 'NOOP':
          reply('250 2.0.0 OK');
          break;
        case 'DATA':
          inData = true;
          reply('354 End data with <CR><LF>.<CR><LF>');
          break;
        case 'QUIT':
          reply('221 2.0.0 Bye');
          socket.end();
          return;
        default:
          reply('502 5.5.2 Command not implemented');
      }
    }
  });
  socket.on('error', () => socket.destroy());
}

export async function startSmtpSink(): Promise<SmtpSink> {
  let messages = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    serve(socket, () => messages++);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    get messages() {
      return messages;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
