import type http from 'node:http';
import type { AddressInfo } from 'node:net';

/** Listen on a free loopback port; resolves with the port. */
export async function listenLocal(server: http.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return (server.address() as AddressInfo).port;
}

/** Close the server and every connection it still has (keep-alive sockets would hold the process). */
export async function stopServer(server: http.Server): Promise<void> {
  const closed = new Promise<void>((r) => server.close(() => r()));
  server.closeAllConnections();
  await closed;
}
