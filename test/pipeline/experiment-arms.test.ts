// `--arms` with pruning modifiers and `--seeds` as experiment parses them (issue 16 items 5, 7), and where each
// (arm, seed) run lives: bad input is one error naming the flag.
import { describe, expect, it } from 'vitest';
import { parseArmSpecs, parseArms, runDirName, seedList } from '../../src/pipeline/experiment.js';
import { InputError } from '../../src/util/errors.js';

describe('experiment arms and seeds', () => {
  it('a curriculum with optional +prune modifiers; the modifiers become settings', () => {
    expect(parseArmSpecs('shuffle, stages+prune-incorrect-chosen,distance+prune-comment-only+prune-incorrect-chosen')).toEqual([
      { name: 'shuffle', curriculum: 'shuffle', overrides: {} },
      { name: 'stages+prune-incorrect-chosen', curriculum: 'stages', overrides: { pruneIncorrectChosen: true } },
      { name: 'distance+prune-comment-only+prune-incorrect-chosen', curriculum: 'distance', overrides: { pruneCommentOnly: true, pruneIncorrectChosen: true } },
    ]);
    expect(parseArms('stages,stages+prune-comment-only')).toEqual(['stages', 'stages']);
  });

  it('unknown curricula, unknown modifiers and repeated arms are refused, naming --arms', () => {
    expect(() => parseArmSpecs('stages,easy')).toThrow(InputError);
    expect(() => parseArmSpecs('stages,easy')).toThrow(/--arms: "easy" \(expected a list from/);
    expect(() => parseArmSpecs('stages+prune')).toThrow(/--arms: "stages\+prune": unknown modifier \+prune/);
    expect(() => parseArmSpecs('shuffle,shuffle')).toThrow(/--arms: "shuffle,shuffle" \(expected distinct arms/);
    expect(() => parseArmSpecs(' , ')).toThrow(/distinct arms/);
  });

  it('--seeds K: K seeds from --seed; one seed keeps the arm folder, more nest seed-<s>', () => {
    expect(seedList(42, 3)).toEqual([42, 43, 44]);
    expect(() => seedList(42, 0)).toThrow(/--seeds: 0 \(expected an integer >= 1/);
    expect(() => seedList(42, 1.5)).toThrow(InputError);
    expect(runDirName('stages', 42, 1)).toBe('stages');
    expect(runDirName('stages+prune-comment-only', 43, 3)).toBe('stages+prune-comment-only/seed-43');
  });
});
