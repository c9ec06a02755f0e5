// Pages that follow what they show: a part of the page is redrawn from
// what a fetch returns, each refresh, but only when that changed (so the
// keyboard's place and open details survive a refresh); a failed fetch
// shows its error in the part's place.
import {replace} from './dom.js';
import {errorBox} from './api.js';

// live returns the refresh of el: draw(data) of what fetch() returns; key
// picks what counts as a change.
export function live(el, fetch, draw, key = JSON.stringify) {
  let last = null;
  return async () => {
    let data;
    try {
      data = await fetch();
    } catch (err) {
      replace(el, errorBox(err));
      last = null;
      return;
    }
    const k = key(data);
    if (k === last) return;
    last = k;
    replace(el, await draw(data));
  };
}
