// Compiled to server.js by esbuild inside the gulp pipeline; the image gets the JavaScript only.
import http from 'node:http';
import { greeting } from './greeting.js';

const port: number = Number(process.env.PORT ?? 8080);
http.createServer((_req, res) => res.end(`${greeting(new Date())}\n`)).listen(port, () => {
  console.log(`typescript app listening on ${port}`);
});
