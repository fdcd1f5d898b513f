/* mneme tokenize: texts on stdin, the token ids training feeds the model on
 * stdout, one JSON line each. */
#ifndef MNEME_TOKENIZE_CMD_H
#define MNEME_TOKENIZE_CMD_H

int tokenize_main(int argc, char **argv);

#endif
