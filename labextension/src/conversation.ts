/**
 * Conversation turns in the runs panel: the chat badge of a turn's row, and the "Conversation NAME" section of
 * a turn's detail (its turns in order, the shown one highlighted, each opening its run).
 */
import { IConversation, IConversationTurn, IRunRow } from './api';
import { h } from './dom';
import { MISSING } from './format';

/** The badge of a turn's row: "chat #2" (the conversation's name is in its tooltip: with it, the badge no longer
 * fits beside the status and age at the default sidebar width); null for a run that is no conversation turn. */
export function chatBadgeText(run: Pick<IRunRow, 'conversation_name' | 'turn'>): string | null {
  if (!run.conversation_name) {
    return null;
  }
  return typeof run.turn === 'number' && run.turn > 0 ? `chat #${run.turn}` : 'chat';
}

export function chatBadge(run: Pick<IRunRow, 'conversation_name' | 'turn'>): HTMLElement | null {
  const text = chatBadgeText(run);
  if (!text) {
    return null;
  }
  const turn = typeof run.turn === 'number' ? `, turn ${run.turn}` : '';
  return h(
    'span',
    { class: 'llmops-chat-badge', testid: 'llmops-chat-badge', title: `Conversation ${run.conversation_name}${turn}` },
    text
  );
}

/** Turns by number, then start time (a failed turn comes before the retry that got its number). */
export function orderTurns(turns: IConversationTurn[]): IConversationTurn[] {
  return [...turns].sort((a, b) => a.turn - b.turn || a.start_time - b.start_time);
}

/** "Turn 2 · failed", "Turn 3 · interrupted", "Turn 1". */
export function turnLabel(turn: IConversationTurn): string {
  const status = (turn.status || '').toUpperCase();
  const state = turn.interrupted || status === 'KILLED' ? 'interrupted' : status === 'FAILED' ? 'failed' : '';
  return [`Turn ${turn.turn > 0 ? turn.turn : '?'}`, state].filter(Boolean).join(' · ');
}

/** "3 turns", "3 turns (2 answered)", with "; first 100 shown" when cut. */
export function conversationSummary(conversation: IConversation): string {
  const turns = conversation.turns ?? [];
  const numbers = new Set(turns.map(t => t.turn));
  const answered = new Set(turns.filter(t => (t.status || '').toUpperCase() === 'FINISHED').map(t => t.turn));
  const count = `${numbers.size} turn${numbers.size === 1 ? '' : 's'}`;
  const parts = [answered.size === numbers.size ? count : `${count} (${answered.size} answered)`];
  if (conversation.parent) {
    parts.push(`forked after turn ${conversation.parent.turns} of ${conversation.parent.id.slice(0, 8)}`);
  }
  if (conversation.truncated) {
    parts.push(`first ${turns.length} runs shown`);
  }
  return parts.join(' · ');
}

/** The "Conversation NAME" section of a turn's detail; `open(runId)` shows another turn's run. */
export function renderConversation(conversation: IConversation, open: (runId: string) => void): HTMLElement {
  const items = orderTurns(conversation.turns ?? []).map(turn => {
    const current = turn.run_id === conversation.current;
    const status = (turn.status || '').toLowerCase();
    return h(
      'li',
      {
        class: `llmops-turn${current ? ' llmops-turn-current' : ''}`,
        testid: 'llmops-turn',
        'data-run-id': turn.run_id,
        'aria-current': current ? 'true' : undefined,
        role: 'button',
        tabindex: 0,
        title: current ? 'This run' : `Open run ${turn.name || turn.run_id}`,
        onclick: () => (current ? undefined : open(turn.run_id)),
        onkeydown: (e: Event) => {
          if ((e as KeyboardEvent).key === 'Enter' && !current) {
            open(turn.run_id);
          }
        }
      },
      h(
        'div',
        { class: 'llmops-turn-head' },
        h('span', { class: `llmops-turn-label llmops-status-${status}` }, turnLabel(turn)),
        current ? h('span', { class: 'llmops-muted' }, 'shown') : null
      ),
      h('div', { class: 'llmops-turn-user', title: turn.user ?? '' }, h('b', null, 'user: '), turn.user ?? MISSING),
      turn.error
        ? h('div', { class: 'llmops-turn-error', title: turn.error }, turn.error)
        : h('div', { class: 'llmops-turn-assistant', title: turn.assistant ?? '' }, h('b', null, 'assistant: '),
          turn.assistant ?? MISSING)
    );
  });
  return h(
    'div',
    { class: 'llmops-conversation', testid: 'llmops-conversation' },
    h('h4', { title: `Conversation id ${conversation.id}` }, `Conversation ${conversation.name ?? conversation.id.slice(0, 8)}`),
    h('div', { class: 'llmops-muted' }, conversationSummary(conversation)),
    h('ol', { class: 'llmops-turns', testid: 'llmops-turns' }, ...items)
  );
}
