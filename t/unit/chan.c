/* Unit tests for shared/chan.c: channel names and the channels of a new message. */
#include "tap.h"

#include "chan.h"

#define A "0b6f1c2e-1f7a-4b8e-9c3d-2a1b3c4d5e6f"
#define B "1c7f2d3e-2a8b-4c9d-8e1f-3b2c4d5e6f70"
#define G "2d8a3e4f-3b9c-4dae-9f20-4c3d5e6f7081"

int main(void)
{
    char ch[2][CHAN_NAME_MAX], buf[CHAN_NAME_MAX];
    is_int(chan_name(buf, CHAN_USER, A), (long long)sizeof(CHAN_USER A) - 1, "a user channel");
    is_str(buf, "chatd:user:" A, "named chatd:user:<id>");
    is_int(chan_name(buf, CHAN_GROUP, A A), -1, "a name longer than CHAN_NAME_MAX is refused");

    is_int(chan_conversation(ch, A, B, NULL, 1), 2, "a private message: two channels");
    is_str(ch[0], CHAN_USER B, "the receiver's first");
    is_str(ch[1], CHAN_USER A, "then the sender's");
    is_int(chan_conversation(ch, A, A, "", 1), 1, "a message to oneself: one channel, once");
    is_str(ch[0], CHAN_USER A, "the user's own");
    is_int(chan_conversation(ch, A, "", G, 1), 2, "a new group message: two channels");
    is_str(ch[0], "chatd:group:" G, "the group's");
    is_str(ch[1], "chat:messages:" G, "and the old version's");
    is_int(chan_conversation(ch, A, "", G, 0), 1, "an edit in a group: the group's only");
    return done_testing();
}
