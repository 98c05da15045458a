// Chat templates as transformers loads and renders them (issue 13 item 13). Transcribed from transformers:
// tokenization_utils_base.py _from_pretrained ("If independent chat template file(s) exist, they take priority over
// template entries in the tokenizer config"; tests/test_tokenization_common.py test_chat_template_file_priority) and
// utils/chat_template_utils.py _compile_jinja_template (strftime_now = datetime.now().strftime, raise_exception raises
// TemplateError, tojson = json.dumps(ensure_ascii=False)). Expected strings are python3 3.11's for the same calls.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadTokenizer, strftime, tokenizerFromFiles, type ChatMessage } from '../../src/tokenizer/tokenizer.js';
import { makeTinyTokenizer } from '../../src/tokenizer/tiny.js';
import { InputError } from '../../src/util/errors.js';

const tiny = makeTinyTokenizer();
const withTemplate = (configTemplate: string | undefined, fileTemplate?: string, now?: () => Date) => {
  const { chat_template: _, ...cfg } = tiny.tokenizerConfig;
  return tokenizerFromFiles({
    tokenizerJson: tiny.tokenizerJson,
    tokenizerConfig: configTemplate === undefined ? cfg : { ...cfg, chat_template: configTemplate },
    chatTemplate: fileTemplate,
    source: 'm',
    now,
  });
};
const user: ChatMessage[] = [{ role: 'user', content: 'héllo <b>&"x"' }];
const render = (t: ReturnType<typeof withTemplate>, messages = user) => t.applyChatTemplate(messages, { addGenerationPrompt: false });

describe('which template', () => {
  it('chat_template.jinja wins over tokenizer_config.json\'s chat_template (transformers test_chat_template_file_priority)', () => {
    expect(render(withTemplate('a', 'b'))).toBe('b');
    expect(render(withTemplate('a'))).toBe('a');
    expect(render(withTemplate(undefined, 'b'))).toBe('b');
  });

  it('loadTokenizer reads chat_template.jinja beside tokenizer_config.json and prefers it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'chat-template-'));
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tiny.tokenizerJson));
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ ...tiny.tokenizerConfig, chat_template: 'from the config' }));
    expect(render(await loadTokenizer(dir))).toBe('from the config');
    writeFileSync(join(dir, 'chat_template.jinja'), 'from the file {{ messages[0].role }}');
    expect(render(await loadTokenizer(dir))).toBe('from the file user');
  });
});

describe("the template's context, as transformers passes it", () => {
  it('strftime_now is datetime.now().strftime in the C locale (Llama 3.2\'s date line)', () => {
    // Llama 3.2 Instruct's template, its date lines as written there.
    const tpl = [
      '{%- if not date_string is defined %}',
      '    {%- if strftime_now is defined %}',
      '        {%- set date_string = strftime_now("%d %b %Y") %}',
      '    {%- else %}',
      '        {%- set date_string = "26 Jul 2024" %}',
      '    {%- endif %}',
      '{%- endif %}',
      'Today Date: {{ date_string }}',
    ].join('\n');
    expect(render(withTemplate(tpl, undefined, () => new Date(2026, 11, 1)))).toBe('Today Date: 01 Dec 2026');
  });

  it('strftime agrees with python3 datetime.strftime on every code we map', () => {
    const fmt = '%a %A %w %d %b %B %m %y %Y %H %I %p %M %S %j';
    expect(strftime(new Date(2024, 6, 26, 15, 4, 5), fmt + ' %% %q')).toBe('Fri Friday 5 26 Jul July 07 24 2024 15 03 PM 04 05 208 % %q');
    expect(strftime(new Date(2026, 0, 3, 0, 7, 9), fmt)).toBe('Sat Saturday 6 03 Jan January 01 26 2026 00 12 AM 07 09 003');
  });

  it('raise_exception(message) stops the render with the template\'s message, naming the template', () => {
    const tpl = "{% if messages[0]['role'] != 'system' %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}ok";
    const t = withTemplate(tpl);
    expect(() => render(t)).toThrow(InputError);
    expect(() => render(t)).toThrow('chat template: raise_exception: Conversation roles must alternate user/assistant/user/assistant/...');
    expect(render(t, [{ role: 'system', content: 's' }])).toBe('ok');
  });

  it('tojson is json.dumps(ensure_ascii=False): no HTML escaping, indent and sort_keys as Python', () => {
    expect(render(withTemplate('{{ messages | tojson }}'))).toBe('[{"role": "user", "content": "héllo <b>&\\"x\\""}]');
    expect(render(withTemplate('{{ messages | tojson(indent=2) }}'))).toBe('[\n  {\n    "role": "user",\n    "content": "héllo <b>&\\"x\\""\n  }\n]');
  });

  it('tools and documents are None, the special tokens are set, range and loop controls work', () => {
    const tpl = '{% if tools is none and documents is none %}N{% endif %}{{ bos_token }}|{{ eos_token }}|{% for i in range(3) %}{{ i }}{% endfor %}|{% if not add_generation_prompt %}G{% endif %}';
    expect(render(withTemplate(tpl))).toBe('N<|begin_of_text|>|<|eot_id|>|012|G');
    // jinja2.ext.loopcontrols, which transformers' environment loads.
    expect(render(withTemplate('{% for i in range(5) %}{% if i == 3 %}{% break %}{% endif %}{% if i == 1 %}{% continue %}{% endif %}{{ i }}{% endfor %}'))).toBe('02');
  });
});
