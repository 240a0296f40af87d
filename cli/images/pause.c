/*
 * The pod sandbox's process: hold the pod's namespaces open and do nothing else.
 *
 * It is PID 1 of the sandbox, so it reaps any orphan that is handed to it, and it
 * exits at once (status 0) on SIGINT or SIGTERM so that stopping a sandbox never
 * waits for a kill timeout. Built with `gcc -static -O2` by cli/local_images.py.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static void quit(int signo)
{
    (void)signo;
    _exit(0);
}

static void reap(int signo)
{
    (void)signo;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
}

static void on(int signo, void (*handler)(int), int flags)
{
    struct sigaction action;

    memset(&action, 0, sizeof(action));
    action.sa_handler = handler;
    action.sa_flags = flags;
    sigemptyset(&action.sa_mask);
    if (sigaction(signo, &action, NULL) < 0)
        _exit(1);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    on(SIGINT, quit, 0);
    on(SIGTERM, quit, 0);
    on(SIGCHLD, reap, SA_NOCLDSTOP | SA_RESTART);
    for (;;)
        pause();
    return 1;
}
