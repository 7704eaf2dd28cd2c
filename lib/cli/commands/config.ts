// `capstan config print`: the settings in effect (lib/commands/config.ts), as Capstan prints them.
import { capstanConfiguration } from '../../commands/config.js';
import type { Command } from '../command.js';
import { expectArgs } from '../values.js';

const print: Command = {
  name: 'print',
  usage: 'print current capstan configuration',
  async run(ctx, p) {
    expectArgs(p.args, 0, 'usage: capstan config print', ctx.path);
    const c = await capstanConfiguration({ root: ctx.root, repoUrl: ctx.global.repoUrl, cwd: ctx.cwd, env: ctx.env });
    ctx.out.write([
      '--- global configuration',
      `CAPSTAN_ROOT: ${c.root}`,
      `CAPSTAN_REPO_URL: ${c.repoUrl}`,
      `CAPSTAN_DISABLE_KVM: ${c.disableKvm}`,
      `CAPSTAN_QEMU_AIO_TYPE: ${c.qemuAioType}`,
      '',
      '--- curent directory configuration', // sic: Capstan's spelling, for scripts that grep it
      'CAPSTANIGNORE:',
      ...(c.capstanignoreError ? [c.capstanignoreError.message.split('\n')[0]!] : c.ignore),
      '',
    ].join('\n'));
  },
};

export const configCommand: Command = {
  name: 'config',
  usage: 'Capstan configuration',
  subcommands: [print],
};
