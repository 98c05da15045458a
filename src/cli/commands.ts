// The list of commands `node train.js` knows, in help order.
// main.ts registers them; adding a command is one import and one entry here.
import type { CommandModule } from 'yargs';
import { scoreCommand } from './score.js';
import { initTinyCommand } from './init-tiny.js';
import { trainCommand } from './train.js';
import { mergeCommand } from './merge.js';
import { reportCommand } from './report.js';
import { evalCommand } from './eval.js';
import { pairsCommand } from './pairs.js';
import { planCommand } from './plan.js';
import { doctorCommand } from './doctor.js';
import { experimentCommand } from './experiment.js';
import { worldCommand } from './world.js';
import { sftCommand } from './sft.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const commands: CommandModule<any, any>[] = [trainCommand, scoreCommand, evalCommand, pairsCommand, experimentCommand, mergeCommand, reportCommand, worldCommand, sftCommand, initTinyCommand, planCommand, doctorCommand];
