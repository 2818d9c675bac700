/**
 * A conversation turn in the panel: the chat badge of its row, its turns in order, the shown one highlighted.
 */
import { IConversation, IConversationTurn } from '../api';
import { chatBadge, chatBadgeText, conversationSummary, orderTurns, renderConversation, turnLabel } from '../conversation';

const turn = (n: number, runId: string, status = 'FINISHED', start = n * 10, extra: Partial<IConversationTurn> = {}):
  IConversationTurn => ({
  turn: n,
  run_id: runId,
  name: `prompt-${runId}`,
  status,
  start_time: start,
  interrupted: false,
  user: `question ${n}`,
  assistant: status === 'FINISHED' ? `answer ${n}` : null,
  error: status === 'FAILED' ? 'ProviderError: HTTP 500' : null,
  ...extra
});

const conversation = (turns: IConversationTurn[], current: string | null = null): IConversation => ({
  id: 'a'.repeat(32),
  name: 'support',
  parent: null,
  turns,
  truncated: false,
  current
});

describe('chat badge', () => {
  it('names the turn of a conversation run, nothing for others', () => {
    expect(chatBadgeText({ conversation_name: 'support', turn: 3 })).toBe('chat #3');
    expect(chatBadgeText({ conversation_name: 'support', turn: null })).toBe('chat');
    expect(chatBadgeText({ conversation_name: null, turn: null })).toBeNull();
    expect(chatBadgeText({})).toBeNull();
    expect(chatBadge({ conversation_name: null })).toBeNull();
    const badge = chatBadge({ conversation_name: 'support', turn: 2 })!;
    expect(badge.textContent).toBe('chat #2');
    expect(badge.title).toBe('Conversation support, turn 2');
  });
});

describe('turns', () => {
  it('are ordered by number, a failed try before the retry that took its number', () => {
    const shuffled = [turn(3, 'c'), turn(2, 'b2', 'FINISHED', 25), turn(1, 'a'), turn(2, 'b1', 'FAILED', 21)];
    expect(orderTurns(shuffled).map(t => t.run_id)).toEqual(['a', 'b1', 'b2', 'c']);
    expect(shuffled.map(t => t.run_id)).toEqual(['c', 'b2', 'a', 'b1']); // the input is left as it was
  });

  it('say what happened to them', () => {
    expect(turnLabel(turn(1, 'a'))).toBe('Turn 1');
    expect(turnLabel(turn(2, 'b', 'FAILED'))).toBe('Turn 2 · failed');
    expect(turnLabel(turn(3, 'c', 'KILLED', 0, { interrupted: true }))).toBe('Turn 3 · interrupted');
    expect(turnLabel(turn(0, 'd'))).toBe('Turn ?');
  });

  it('are counted by number, answered or not', () => {
    expect(conversationSummary(conversation([turn(1, 'a'), turn(2, 'b')]))).toBe('2 turns');
    expect(conversationSummary(conversation([turn(1, 'a'), turn(2, 'b1', 'FAILED'), turn(2, 'b2')]))).toBe('2 turns');
    expect(conversationSummary(conversation([turn(1, 'a'), turn(2, 'b', 'FAILED')]))).toBe('2 turns (1 answered)');
    const fork = { ...conversation([turn(3, 'c')]), parent: { id: 'f'.repeat(32), turns: 2 }, truncated: true };
    expect(conversationSummary(fork)).toBe('1 turn · forked after turn 2 of ffffffff · first 1 runs shown');
  });
});

describe('the conversation section', () => {
  it('lists the turns in order, highlights the shown one and opens the others', () => {
    const opened: string[] = [];
    const node = renderConversation(
      conversation([turn(2, 'b', 'FAILED'), turn(1, 'a'), turn(3, 'c')], 'a'),
      id => opened.push(id)
    );
    expect(node.querySelector('h4')!.textContent).toBe('Conversation support');
    const items = [...node.querySelectorAll<HTMLElement>('[data-testid="llmops-turn"]')];
    expect(items.map(i => i.dataset.runId)).toEqual(['a', 'b', 'c']);
    expect(items.map(i => i.classList.contains('llmops-turn-current'))).toEqual([true, false, false]);
    expect(items[0].getAttribute('aria-current')).toBe('true');
    expect(items[0].textContent).toContain('user: question 1');
    expect(items[0].textContent).toContain('assistant: answer 1');
    expect(items[1].textContent).toContain('ProviderError: HTTP 500');
    items[0].click(); // the shown run: nothing to open
    items[2].click();
    items[1].dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter' }));
    expect(opened).toEqual(['c', 'b']);
  });

  it('keeps server text as text', () => {
    const node = renderConversation(conversation([turn(1, 'a', 'FINISHED', 0, { user: '<img src=x onerror=alert(1)>' })]), () => 0);
    expect(node.querySelector('img')).toBeNull();
    expect(node.textContent).toContain('<img src=x onerror=alert(1)>');
  });
});
