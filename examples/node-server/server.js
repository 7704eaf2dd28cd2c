// An HTTP server with node:http and one production dependency. On OSv it is the only
// process: there is no shell and no child process, and the port is forwarded by QEMU.
import http from 'node:http';
import { greet } from 'greeting';

const port = Number(process.env.PORT ?? 8080);
http.createServer((req, res) => {
  res.setHeader('content-type', 'text/plain');
  res.end(`${greet('OSv')} (node ${process.version}, ${req.method} ${req.url})\n`);
}).listen(port, () => console.log(`listening on ${port}`));
